"""The imagine stage's throughput with a tiny diffusers inpainting pipeline, batched against one
request at a time, and the cost of one cache lookup in a tool call.

Both runs ask the same outpainting requests (regions cut by the image border in the demo's scenes);
the batched backend sends ``batch_size`` canvases per pipeline call. Goals: batched ≥ 3x one at a
time; a cache lookup (index, one row group, one PNG decode) < 2 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from timing import timed_interleaved

from hoidata.demo.scenes import make_raw
from hoidata.imagine import DiffusersImagine, ImagineRequest
from hoidata.imagine.canvas import batch_shape, make_canvas, working_size
from hoidata.imagine.regions import choose_regions
from hoidata.imagine.tiny import build_tiny_inpainting
from hoidata.io import read_table
from hoidata.io.images import open_images
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.imagine import ImagineConfig, imagine
from hoidata.tools.imagine_cache import ImagineCache


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    files = make_raw(tmp / "raw", n_train=48, n_test=1)
    convert(
        ConvertConfig(
            source="hico",
            annotations=str(files["train"]),
            split="train",
            images=str(tmp / "raw" / "images" / "train"),
            box_origin="one-based",
        ),
        tmp / "canonical",
        progress=False,
    )
    table = read_table(tmp / "canonical")
    regions = choose_regions(table, ("cut", "union"))
    images = open_images(table["image"].to_pylist(), str(tmp / "raw" / "images" / "train"))
    ids = table["sample_id"].to_pylist()
    requests = [
        ImagineRequest(images[r], regions.box[i], "outpaint", ids[r], regions.label[i])
        for i, r in enumerate(regions.row)
    ][:32]
    model = str(build_tiny_inpainting(tmp / "tiny-sd"))
    device = "cuda" if torch.cuda.is_available() else "cpu"  # a GPU shows what batching saves
    batched = DiffusersImagine(model, steps=4, size=64, batch_size=16, device=device)
    single = DiffusersImagine(model, steps=4, size=64, batch_size=1, device=device)
    batched.imagine_many(requests[:2]), single.imagine_many(requests[:1])  # load both pipelines
    t_single, t_batched = timed_interleaved(
        [lambda: single.imagine_many(requests), lambda: batched.imagine_many(requests)], repeats=3
    )
    n = len(requests)
    print(f"imagine, tiny inpainting pipeline (4 steps, 64 px), {n} outpainting requests on {device}")
    print(f"  one request per pipeline call: {n / t_single:7.1f} images/s")
    print(f"  {batched.batch_size} per pipeline call:          {n / t_batched:7.1f} images/s")
    print(f"  speed-up: {t_single / t_batched:.1f}x   (goal: ≥ 3x)")
    calls_at_real_size(table, images)

    imagine(tmp / "canonical", tmp / "cache", ImagineConfig(regions=("cut", "union")), progress=False)
    cache = ImagineCache(tmp / "cache")
    keys = read_table(tmp / "cache", ["sample_id", "box"]).to_pylist()
    times = []
    for k in keys * 5:
        t = time.perf_counter()
        view = cache.lookup(k["sample_id"], np.array(k["box"]) + 1.0, "outpaint")
        times.append(time.perf_counter() - t)
        assert view is not None
    print(
        f"  cache lookup in a tool call ({len(cache)} views): median {1000 * statistics.median(times):.2f} ms, "
        f"max {1000 * max(times):.2f} ms   (goal: < 2 ms)"
    )


def calls_at_real_size(table: pa.Table, images: list) -> None:
    """Pipeline calls at 512 px for every outpainting canvas of the scenes, batched by working size
    (one per aspect: how batches used to form) and by padded shape (how they form now). Counted, not
    run: what batching buys on a GPU is calls saved, and a CPU cannot show it."""
    regions = choose_regions(table, ("cut", "union"))
    canvases = [make_canvas(images[r], regions.box[i], "outpaint") for i, r in enumerate(regions.row)]
    sizes = [working_size(*c.image.size, 512) for c in canvases if c.needs_generation]
    shapes = [batch_shape(*size, 512) for size in sizes]
    extra = sum(w * h for w, h in shapes) / sum(w * h for w, h in sizes) - 1
    for batch in (4, 16):
        by_size, by_shape = (sum(-(-n // batch) for n in Counter(keys).values()) for keys in (sizes, shapes))
        print(
            f"  at 512 px, {len(sizes)} canvases, {batch} per call: {by_size} calls by working size "
            f"({len(set(sizes))} sizes), {by_shape} by padded shape ({len(set(shapes))} shapes, "
            f"{100 * extra:.0f}% more pixels)"
        )


if __name__ == "__main__":
    main()
