"""build-sft referring over the full HICO-DET test set (paths, not embedded), against a seed-style baseline.

The baseline is what the seed scripts do, done carefully: rows as Python dicts, a loop over images
and their interactions, pairs grouped in a dict, box text and questions made with f-strings,
messages as nested dicts, ``pyarrow.Table.from_pylist`` + Parquet. It picks paraphrases with its
own hash, so the comparison checks the answers, the boxes written in the questions and the pairs.
Goal: ≥ 20,000 samples/s and ≥ 5x the baseline on 2 cores.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from timing import hoidata, timed, whole_process

from hoidata.io import read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.profiles import get_profile
from hoidata.schemas.boxes import smart_resize
from hoidata.sft.prompts import templates
from hoidata.sft.schema import SFT_SCHEMA

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "hico" / "upt_instances_test2015.json"
)


def baseline(boxed: Path, out: Path) -> int:
    """Seed style: per-record loops with text formatting."""
    profile = get_profile("qwen2.5-vl")
    paraphrases = templates()["referring"]
    table = pq.read_table(next((boxed / "data").glob("*.parquet")))
    samples = []
    for rec in table.to_pylist():
        w, h = rec["width"], rec["height"]
        rh, rw = smart_resize(h, w, profile.factor, profile.min_pixels, profile.max_pixels)
        sx, sy = rw / w, rh / h

        def fmt(b: list[float], sx: float = sx, sy: float = sy, rw: int = rw, rh: int = rh) -> str:
            x1, y1 = min(max(round(b[0] * sx), 0), rw), min(max(round(b[1] * sy), 0), rh)
            x2, y2 = min(max(round(b[2] * sx), 0), rw), min(max(round(b[3] * sy), 0), rh)
            return f"[{x1}, {y1}, {x2}, {y2}]"

        groups: dict[tuple[int, int], list[dict]] = {}
        for it in rec["interactions"]:
            groups.setdefault((it["subject"], it["object"]), []).append(it)
        for k, ((s, o), its) in enumerate(sorted(groups.items())):
            person, obj = rec["instances"][s], rec["instances"][o]
            sid = f"{rec['sample_id']}:referring:{k}"
            template = paraphrases[zlib.crc32(sid.encode()) % len(paraphrases)]
            question = template.format(
                person=fmt(person["bbox"]), object=obj["label"].replace("_", " "), object_box=fmt(obj["bbox"])
            )
            verbs = []
            for it in sorted(its, key=lambda x: x["verb_id"]):
                v = it["verb"].replace("_", " ")
                if v not in verbs:
                    verbs.append(v)
            samples.append(
                {
                    "sample_id": sid,
                    "source_id": rec["sample_id"],
                    "task": "referring",
                    "images": [{"bytes": None, "path": rec["image"]["path"]}],
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image", "text": None}, {"type": "text", "text": question}],
                            "tool_calls": None,
                        },
                        {
                            "role": "assistant",
                            "content": [{"type": "text", "text": ", ".join(verbs)}],
                            "tool_calls": None,
                        },
                    ],
                    "tools": None,
                    "width": w,
                    "height": h,
                    "resized_width": rw,
                    "resized_height": rh,
                    "pairs": [
                        {
                            "person_bbox": person["bbox"],
                            "object_bbox": obj["bbox"],
                            "verb": it["verb"],
                            "verb_id": it["verb_id"],
                            "object": obj["label"],
                            "object_id": obj["label_id"],
                            "hoi_id": it["hoi_id"],
                        }
                        for it in sorted(its, key=lambda x: x["verb_id"])
                    ],
                    "refer_boxes": None,
                    "uses_tool": False,
                }
            )
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(samples, schema=SFT_SCHEMA), out / "test.parquet", compression="zstd")
    return len(samples)


def _comparable(rows: list[dict]) -> list[tuple]:
    box = re.compile(r"\[\d+, \d+, \d+, \d+\]")
    return sorted(
        (
            r["source_id"],
            tuple(box.findall(r["messages"][0]["content"][1]["text"])),
            r["messages"][1]["content"][0]["text"],
            tuple((*tuple(np.round(p["person_bbox"], 3)), p["verb"]) for p in r["pairs"]),
        )
        for r in rows
    )


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    convert(
        ConvertConfig(source="hico", annotations=str(REFERENCE), split="test", image_check=False),
        tmp / "canonical",
        progress=False,
    )
    boxes(tmp / "canonical", tmp / "boxed", BoxesConfig(profile="qwen2.5-vl"))
    cfg = BuildSftConfig(task="referring", images="path")
    t_base = timed(lambda: baseline(tmp / "boxed", tmp / "base"))
    t_ours = timed(lambda: build_sft(tmp / "boxed", tmp / "ours", cfg, overwrite=True))
    ours = read_table(tmp / "ours").to_pylist()
    base = pq.read_table(tmp / "base").to_pylist()
    assert _comparable(ours) == _comparable(base), "hoidata and the baseline disagree"
    cli = whole_process(
        "hoidata build-sft referring",
        hoidata(
            "build-sft", "referring", tmp / "boxed", "--images", "path", "-o", tmp / "cli", "--overwrite"
        ),
    )
    shutil.rmtree(tmp)
    n = len(ours)
    print(f"HICO-DET test, referring (qwen2.5-vl), {n:,} samples from 9,658 images, image paths")
    print(
        f"  baseline (loops + f-strings + from_pylist): {t_base * 1000:8.1f} ms  ({n / t_base:9,.0f} samples/s)"
    )
    print(
        f"  hoidata build-sft (in-process):             {t_ours * 1000:8.1f} ms  ({n / t_ours:9,.0f} samples/s)"
    )
    print(f"  speed-up: {t_base / t_ours:.1f}x   (goals: ≥ 5x and ≥ 20,000 samples/s)")
    print(cli.line())


if __name__ == "__main__":
    main()
