"""The baseline of ``bench_convert_upt.py``: a careful one-off script converting the UPT layout.

``json`` + Python loops (instances deduplicated per image, boxes to canonical pixels, HOI ids
checked) + ``pyarrow.Table.from_pylist`` + Parquet. Run as ``python convert_baseline.py ANN OUT``
for its whole-process time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hoidata.schemas.canonical import SCHEMA
from hoidata.schemas.taxonomy import hico_det


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


if __name__ == "__main__":
    baseline(Path(sys.argv[1]), Path(sys.argv[2]))
