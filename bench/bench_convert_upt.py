"""Convert the full HICO-DET test set (UPT layout) with hoidata and with a plain per-record baseline.

The baseline is what a careful one-off script does: ``json`` + Python loops (instances deduplicated
per image, boxes to canonical pixels, HOI ids checked) + ``pyarrow.Table.from_pylist`` + Parquet.
Both outputs are compared row by row before the ratio is printed.
Goal: hoidata ≥ 5x faster, and the whole ``hoidata convert`` process < 2 s on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from timing import timed, timed_interleaved

from hoidata.io import read_table
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.schemas.canonical import SCHEMA
from hoidata.schemas.taxonomy import hico_det

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "hico" / "upt_instances_test2015.json"
)


def baseline(path: Path, out: Path) -> pa.Table:
    tax = hico_det()
    data = json.loads(path.read_text())
    rows = []
    for name, ann, (w, h) in zip(data["filenames"], data["annotation"], data["size"], strict=True):
        instances, index, pairs = [], {}, []
        for bh, bo, hoi, obj, verb in zip(
            ann["boxes_h"], ann["boxes_o"], ann["hoi"], ann["object"], ann["verb"], strict=True
        ):
            ids = []
            for label, box in ((tax.human_object_id, bh), (obj, bo)):
                x1, y1, x2, y2 = box[0] - 1, box[1] - 1, box[2], box[3]
                if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                    raise ValueError(f"bad box in {name}")
                key = (label, x1, y1, x2, y2)
                if key not in index:
                    index[key] = len(instances)
                    instances.append(
                        {
                            "bbox": [x1, y1, x2, y2],
                            "label": tax.objects[label],
                            "label_id": label,
                            "is_human": label == tax.human_object_id,
                        }
                    )
                ids.append(index[key])
            if tax.hoi_lookup[verb, obj] != hoi:
                raise ValueError(f"bad hoi in {name}")
            pairs.append(
                {"subject": ids[0], "object": ids[1], "verb": tax.verbs[verb], "verb_id": verb, "hoi_id": hoi}
            )
        rows.append(
            {
                "sample_id": "hico-det/test/" + name.rsplit(".", 1)[0],
                "source": "hico-det",
                "split": "test",
                "image": {"bytes": None, "path": name},
                "width": w,
                "height": h,
                "instances": instances,
                "interactions": pairs,
                "qa": None,
            }
        )
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "test.parquet", compression="zstd")
    return table


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    cfg = ConvertConfig(source="hico", annotations=str(REFERENCE), split="test", image_check=False)

    def ours() -> None:
        convert(cfg, tmp / "ours", overwrite=True, progress=False)

    t_base, t_ours = timed_interleaved([lambda: baseline(REFERENCE, tmp / "base"), ours], repeats=9)
    base_rows = pq.read_table(tmp / "base").to_pylist()
    our_rows = read_table(tmp / "ours").to_pylist()
    assert base_rows == our_rows, "hoidata and the baseline disagree"
    cmd = [
        str(Path(sys.executable).with_name("hoidata")),
        "convert",
        "hico",
        "-a",
        str(REFERENCE),
        "--no-image-check",
        "-o",
        str(tmp / "cli"),
        "--overwrite",
    ]
    t_cli = timed(lambda: subprocess.run(cmd, check=True, capture_output=True), repeats=3)
    shutil.rmtree(tmp)
    print(
        f"HICO-DET test (UPT), {len(our_rows):,} images, {sum(len(r['interactions']) for r in our_rows):,} pairs"
    )
    print(f"  baseline (json + loops + from_pylist): {t_base * 1000:8.1f} ms")
    print(f"  hoidata convert (in-process):          {t_ours * 1000:8.1f} ms")
    print(f"  speed-up: {t_base / t_ours:.1f}x   (goal ≥ 5x)")
    print(f"  whole `hoidata convert` process:       {t_cli:8.2f} s   (goal < 2 s)")


if __name__ == "__main__":
    main()
