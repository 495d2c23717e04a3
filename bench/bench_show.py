"""hoidata show over a 10,000-image canonical dataset, whole process, against a baseline.

The dataset: demo scenes drawn at HICO-DET's size (640 px on the long side) with photographic
grain, as JPEG of about 90 KB, referenced by path as `hoidata convert` writes them; the file names
are hard links to 64 distinct pictures. `cold` runs `hoidata show` with no site yet, `warm` the same
command again (images up to date, pages rewritten). Such images go into the site as they are; a
second, smaller dataset of large photos (1,600 px, about 500 KB) has every thumbnail decoded and
encoded, in parallel. The baseline is the straightforward way, in one process: the rows as Python
dicts, each image opened and thumbnailed with Pillow's `thumbnail`, the cards formatted with
f-strings, one HTML file per 100 cards.
Goal: cold under 10 s on 2 cores for the 10,000 HICO-sized images.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hoidata.demo.scenes import draw_scene
from hoidata.io import read_manifest, read_table
from hoidata.pipelines.convert import ConvertConfig, convert

N, N_LARGE = 10_000, 2_000
DISTINCT = 64
RUN = "import sys\nsys.argv = ['hoidata', *sys.argv[1:]]\nfrom hoidata.cli import main\nmain()"


def grain(rng: np.random.Generator, w: int, h: int, amp: float) -> np.ndarray:
    """Luminance noise at several scales, so the JPEG sizes come near photographs'."""
    out = np.zeros((h, w))
    for cell in (1, 2, 4, 8, 16, 32):
        out += (
            np.kron(rng.normal(0, 1, (h // cell + 2, w // cell + 2)), np.ones((cell, cell)))[:h, :w]
            * amp
            * cell**0.5
        )
    return out[:, :, None]


def make_dataset(root: Path, n: int = N, long_side: int = 640) -> Path:
    """A converted canonical dataset of ``n`` JPEG images (paths, not embedded)."""
    rng, noise = random.Random(0), np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True)
    bases = []
    for b in range(DISTINCT):
        im, rec = draw_scene(rng, b, "train")
        f = long_side / max(im.size)
        im = im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.BILINEAR)
        pixels = np.asarray(im, np.float64) + grain(noise, im.width, im.height, 4.0)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(images / f"base-{b}.jpg", quality=90)
        for a in rec["annotations"]:  # one-based inclusive pixels, scaled with the picture
            x1, y1, x2, y2 = a["bbox"]
            a["bbox"] = [
                round((x1 - 1) * f) + 1,
                round((y1 - 1) * f) + 1,
                min(round(x2 * f), im.width),
                min(round(y2 * f), im.height),
            ]
        bases.append(rec)
    records = []
    for i in range(n):
        name = f"BENCH_{i:08d}.jpg"
        os.link(images / f"base-{i % DISTINCT}.jpg", images / name)
        records.append(bases[i % DISTINCT] | {"file_name": name, "img_id": i + 1})
    (root / "train.json").write_text(json.dumps(records))
    cfg = ConvertConfig(
        source="hico",
        annotations=str(root / "train.json"),
        split="train",
        images=str(images),
        box_origin="one-based",
    )
    convert(cfg, root / "canonical", progress=False)
    return root / "canonical"


def baseline(dataset: Path, out: Path) -> None:
    """One process, one image after another, pages as f-strings."""
    root = Path(read_manifest(dataset).image_root or ".")
    rows = read_table(dataset).to_pylist()
    (out / "thumbs").mkdir(parents=True, exist_ok=True)
    for start in range(0, len(rows), 100):
        cards = []
        for r in rows[start : start + 100]:
            thumb = out / "thumbs" / (r["image"]["path"] + ".jpg")
            im = Image.open(root / r["image"]["path"]).convert("RGB")
            im.thumbnail((320, 320))
            im.save(thumb, quality=80)
            w, h = r["width"], r["height"]
            boxes = "".join(
                f'<div class="box" style="left:{100 * a["bbox"][0] / w:.2f}%;top:{100 * a["bbox"][1] / h:.2f}%">'
                f"{a['label']}</div>"
                for a in r["instances"]
            )
            verbs = "".join(f"<li>{it['verb']}</li>" for it in r["interactions"])
            cards.append(
                f'<article><h2>{r["sample_id"]}</h2><img src="{thumb}">{boxes}<ul>{verbs}</ul></article>'
            )
        (out / f"page-{start // 100:04d}.html").write_text("<html><body>" + "".join(cards) + "</body></html>")


def whole_process(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, *args], check=True, capture_output=True)
    return time.perf_counter() - t


def line(name: str, times: list[float]) -> str:
    return f"  {name:<28} min {min(times):.2f} s  median {statistics.median(times):.2f} s  max {max(times):.2f} s"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dataset = make_dataset(Path(tmp) / "hico-like")
        large = make_dataset(Path(tmp) / "large", N_LARGE, 1600)
        site = Path(tmp) / "site"
        cold, warm, cold_large = [], [], []
        for _ in range(3):
            shutil.rmtree(site, ignore_errors=True)
            cold.append(whole_process("show", str(dataset), "-o", str(site)))
            warm.append(whole_process("show", str(dataset), "-o", str(site)))
            shutil.rmtree(site)
            cold_large.append(whole_process("show", str(large), "-o", str(site)))
        t = time.perf_counter()
        baseline(dataset, Path(tmp) / "baseline")
        base = time.perf_counter() - t
        mean_kb = (
            np.mean([p.stat().st_size for p in (Path(tmp) / "hico-like" / "images").glob("base-*")]) / 1024
        )
    print(
        f"  hoidata show, {os.cpu_count()} cores; {N:,} images of 640 px, {mean_kb:.0f} KB JPEG on average:"
    )
    print(line("cold (no site yet)", cold))
    print(line("warm (rerun, incremental)", warm))
    print(f"  baseline (one process, in-process time): {base:.2f} s")
    print(
        f"  cold: {base / statistics.median(cold):.1f}x the baseline; warm: {base / statistics.median(warm):.1f}x"
    )
    rate = N_LARGE / statistics.median(cold_large)
    print(line(f"{N_LARGE:,} photos of 1,600 px, cold", cold_large) + f"  ({rate:.0f} thumbnails/s)")


if __name__ == "__main__":
    main()
