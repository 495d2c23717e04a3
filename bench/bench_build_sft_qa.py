"""build-sft hoiqa over referral questions about the full HICO-DET test set, against a per-record baseline.

The data: ``hoidata qa`` writes HOI-Ref-style questions about every person-object pair of the 9,546
HICO-DET test images (UPT's file), ``boxes`` fixes the qwen2.5-vl frame. The baseline does what a
careful conversion script does: rows as Python dicts, a loop over images and their QA items, each
``<box>`` replaced by an f-string box through the profile's resize, messages as nested dicts,
``pyarrow.Table.from_pylist`` + Parquet. Both must write the same questions and answers.
Goal: ≥ 50,000 samples/s, as a ratio against the baseline measured in the same run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from timing import timed, timed_interleaved

from hoidata.io import read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.referral import QAConfig, add_qa
from hoidata.profiles import get_profile
from hoidata.schemas.boxes import smart_resize
from hoidata.sft.schema import SFT_SCHEMA

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "hico" / "upt_instances_test2015.json"
)


def baseline(boxed: Path, out: Path) -> int:
    """Per record: loops, str.replace of each placeholder, f-strings, dict messages."""
    profile = get_profile("qwen2.5-vl")
    samples = []
    for shard in sorted((boxed / "data").glob("*.parquet")):
        for rec in pq.read_table(shard).to_pylist():
            w, h = rec["width"], rec["height"]
            rh, rw = smart_resize(h, w, profile.factor, profile.min_pixels, profile.max_pixels)
            sx, sy = rw / w, rh / h

            def fmt(b: list[float], sx: float = sx, sy: float = sy, rw: int = rw, rh: int = rh) -> str:
                x1, y1 = min(max(round(b[0] * sx), 0), rw), min(max(round(b[1] * sy), 0), rh)
                x2, y2 = min(max(round(b[2] * sx), 0), rw), min(max(round(b[3] * sy), 0), rh)
                return f"[{x1}, {y1}, {x2}, {y2}]"

            for k, item in enumerate(rec["qa"]):
                question, answer = item["question"], item["answer"]
                for b in item["question_boxes"]:
                    question = question.replace("<box>", fmt(b), 1)
                for b in item["answer_boxes"]:
                    answer = answer.replace("<box>", fmt(b), 1)
                samples.append(
                    {
                        "sample_id": f"{rec['sample_id']}#{k}",
                        "source_id": rec["sample_id"],
                        "task": "hoiqa",
                        "images": [{"bytes": None, "path": rec["image"]["path"]}],
                        "messages": [
                            {
                                "role": "user",
                                "content": [
                                    {"type": "image", "text": None},
                                    {"type": "text", "text": f"[{item['task']}] {question}"},
                                ],
                                "tool_calls": None,
                            },
                            {
                                "role": "assistant",
                                "content": [{"type": "text", "text": answer}],
                                "tool_calls": None,
                            },
                        ],
                        "tools": None,
                        "width": w,
                        "height": h,
                        "resized_width": rw,
                        "resized_height": rh,
                        "pairs": [],
                        "refer_boxes": None,
                        "uses_tool": False,
                    }
                )
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(samples, schema=SFT_SCHEMA), out / "test.parquet", compression="zstd")
    return len(samples)


def _texts(rows: list[dict]) -> list[tuple]:
    return sorted(
        (r["sample_id"], r["messages"][0]["content"][1]["text"], r["messages"][1]["content"][0]["text"])
        for r in rows
    )


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    convert(
        ConvertConfig(source="hico", annotations=str(REFERENCE), split="test", image_check=False),
        tmp / "canonical",
        progress=False,
    )
    t_qa = timed(lambda: add_qa(tmp / "canonical", tmp / "qa", QAConfig(), overwrite=True), repeats=3)
    boxes(tmp / "qa", tmp / "boxed", BoxesConfig(profile="qwen2.5-vl"))
    cfg = BuildSftConfig(task="hoiqa", images="path")
    t_base, t_ours = timed_interleaved(
        [
            lambda: baseline(tmp / "boxed", tmp / "base"),
            lambda: build_sft(tmp / "boxed", tmp / "ours", cfg, overwrite=True),
        ],
        repeats=3,
    )
    ours = read_table(tmp / "ours").to_pylist()
    base = pq.read_table(tmp / "base").to_pylist()
    assert _texts(ours) == _texts(base), "hoidata and the baseline disagree"
    shutil.rmtree(tmp)
    n = len(ours)
    print(f"HICO-DET test, referral QA items (hoidata qa, qwen2.5-vl), {n:,} samples from 9,546 images")
    print(f"  hoidata qa (writing the questions):     {t_qa * 1000:8.1f} ms  ({n / t_qa:9,.0f} items/s)")
    print(
        f"  baseline (loops + replace + from_pylist): {t_base * 1000:8.1f} ms  ({n / t_base:9,.0f} samples/s)"
    )
    print(
        f"  hoidata build-sft hoiqa (in-process):     {t_ours * 1000:8.1f} ms  ({n / t_ours:9,.0f} samples/s)"
    )
    print(f"  speed-up: {t_base / t_ours:.1f}x   (goal: ≥ 50,000 samples/s)")


if __name__ == "__main__":
    main()
