"""``hoidata imagine``: backends (a real tiny diffusers pipeline, a real HTTP service on loopback),
the stage (regions, resume after kill -9), and the cache the imagine tool serves in gen-cot."""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hoidata.engines import Generation, Sampling
from hoidata.imagine import DiffusersImagine, HttpImagine, ImagineRequest
from hoidata.imagine.canvas import batch_shape, make_canvas, working_size
from hoidata.imagine.http import ImagineServiceError
from hoidata.imagine.regions import choose_regions
from hoidata.io import read_manifest, read_table
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot
from hoidata.pipelines.imagine import ImagineConfig, imagine
from hoidata.schemas.canonical import SCHEMA
from hoidata.tools.imagine_cache import ROW_GROUP, ImagineCache

MAGENTA = (255, 0, 255)


# ---- a real HTTP imagine service on 127.0.0.1 --------------------------------------------------------
class Service:
    """Answers by path: /ok fills the mask magenta, /slow sleeps past any timeout, /500 always fails,
    /flaky fails twice then answers, /bad answers with no image. Counts requests per path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.delay = 0.0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n = service.hits[self.path] = service.hits.get(self.path, 0) + 1
                if self.path == "/slow":
                    time.sleep(2.0)
                if self.path == "/500" or (self.path == "/flaky" and n <= 2):
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"overloaded")
                    return
                if self.path == "/bad":
                    payload = {"image": base64.b64encode(b"not a png").decode()}
                else:
                    time.sleep(service.delay)
                    canvas = Image.open(io.BytesIO(base64.b64decode(body["image"])))
                    out = Image.new("RGB", canvas.size, MAGENTA)
                    buf = io.BytesIO()
                    out.save(buf, format="PNG")
                    payload = {"image": base64.b64encode(buf.getvalue()).decode()}
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[Service]:
    s = Service()
    yield s
    s.close()


def _scene() -> tuple[Image.Image, np.ndarray]:
    """A gradient image and a box cut by its right border."""
    x = np.linspace(0, 255, 96, dtype=np.uint8)
    pixels = np.stack(
        [np.tile(x, (64, 1)), np.tile(x[:64, None], (1, 96)), np.full((64, 96), 90, np.uint8)], -1
    )
    return Image.fromarray(pixels), np.array([70.0, 20.0, 96.0, 44.0])


def test_http_backend_answers_retries_and_fails_in_bounded_time(service: Service) -> None:
    image, box = _scene()
    request = ImagineRequest(image, box, "outpaint", key="s1", label="hand")
    ok = HttpImagine(service.url + "/ok", backoff=0.01).imagine_many([request])[0]
    canvas = make_canvas(image, box, "outpaint")
    assert isinstance(ok, Image.Image) and ok.size == canvas.image.size
    got, known = np.asarray(ok), np.asarray(canvas.mask) == 0
    assert (got[~known] == MAGENTA).all() and (got[known] == np.asarray(canvas.image)[known]).all()
    flaky = HttpImagine(service.url + "/flaky", retries=3, backoff=0.01).imagine_many([request])[0]
    assert isinstance(flaky, Image.Image) and service.hits["/flaky"] == 3
    failed = HttpImagine(service.url + "/500", retries=2, backoff=0.01).imagine_many([request])[0]
    assert isinstance(failed, ImagineServiceError) and "answered 500: overloaded" in str(failed)
    assert service.hits["/500"] == 3  # one try and two retries, then it stops
    t = time.perf_counter()
    slow = HttpImagine(service.url + "/slow", timeout=0.2, retries=1, backoff=0.01).imagine_many([request])[0]
    assert isinstance(slow, ImagineServiceError) and "unreachable after 2 attempts" in str(slow)
    assert time.perf_counter() - t < 1.5
    bad = HttpImagine(service.url + "/bad", backoff=0.01).imagine_many([request])[0]
    assert isinstance(bad, ImagineServiceError) and "not a JSON image" in str(bad)
    assert service.hits["/bad"] == 1  # a malformed answer is not retried
    refused = HttpImagine("http://127.0.0.1:9/x", retries=1, backoff=0.01).imagine_many([request])[0]
    assert isinstance(refused, ImagineServiceError)
    hits = dict(service.hits)
    context = HttpImagine(service.url + "/ok").imagine_many([ImagineRequest(image, box, "context")])[0]
    assert context.size == make_canvas(image, box, "context").image.size
    assert service.hits == hits  # a context view needs no request


@pytest.fixture(scope="module")
def tiny_inpainting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hoidata.imagine.tiny import build_tiny_inpainting

    return build_tiny_inpainting(tmp_path_factory.mktemp("tiny-sd"))


def test_diffusers_backend_outpaints_the_border_and_keeps_the_known_pixels(tiny_inpainting: Path) -> None:
    image, box = _scene()
    backend = DiffusersImagine(str(tiny_inpainting), steps=2, size=64, batch_size=3)
    requests = [
        ImagineRequest(image, box, "outpaint", key="a", label="hand"),
        ImagineRequest(image, box, "edit", key="a", label="cup"),
        ImagineRequest(image, box, "outpaint", key="b", label="hand"),
        ImagineRequest(
            image, np.array([30.0, 20.0, 50.0, 40.0]), "outpaint", key="a"
        ),  # inside: no generation
    ]
    views = backend.imagine_many(requests)
    assert all(isinstance(v, Image.Image) for v in views)
    for r, view in zip(requests, views, strict=True):
        canvas = make_canvas(r.image, r.box, r.mode)
        assert view.size == canvas.image.size
        known = np.asarray(canvas.mask) == 0
        got = np.asarray(view)
        assert (got[known] == np.asarray(canvas.image)[known]).all()  # the real pixels are kept
        if canvas.needs_generation:
            assert np.abs(got[~known].astype(int) - 127).max() > 0  # the masked part was generated
    assert not np.array_equal(np.asarray(views[0]), np.asarray(views[2]))  # another sample, another seed
    again = DiffusersImagine(str(tiny_inpainting), steps=2, size=64, batch_size=1).imagine_many(requests[:1])[
        0
    ]
    np.testing.assert_allclose(
        np.asarray(again, float), np.asarray(views[0], float), atol=2
    )  # batched == alone
    assert np.array_equal(np.asarray(backend.imagine_many(requests[:1])[0]), np.asarray(views[0]))


def test_canvases_of_one_shape_share_a_pipeline_call_and_come_out_as_if_alone(tiny_inpainting: Path) -> None:
    """Working sizes differ with every region's aspect (24 of them at 512 px in the demo's scenes),
    so canvases are padded to a few shapes and batched by shape; the padding is cropped off."""
    image, _ = _scene()
    boxes = [
        [70.0, 20.0, 96.0, 44.0],
        [60.0, 10.0, 96.0, 50.0],
        [0.0, 0.0, 30.0, 18.0],
        [72.0, 20.0, 96.0, 44.0],  # square: 128 x 128, the shape of the first (128 x 120)
        [80.0, 30.0, 96.0, 64.0],
    ]
    requests = [ImagineRequest(image, np.array(b), "outpaint", key="a", label="hand") for b in boxes]
    canvases = [make_canvas(image, r.box, "outpaint") for r in requests]
    sizes = [working_size(*c.image.size, 128) for c in canvases]
    shapes = {batch_shape(*size, 128) for size in sizes}
    assert len(shapes) < len(set(sizes))  # some canvases of different sizes share a shape
    assert all(w % 16 == 0 and h % 16 == 0 and max(w, h) == 128 for w, h in shapes)
    backend = DiffusersImagine(str(tiny_inpainting), steps=2, size=128, batch_size=8)
    pipe, calls = backend.pipeline(), []
    backend._pipe = lambda **kw: calls.append((kw["width"], kw["height"])) or pipe(**kw)
    views = backend.imagine_many(requests)
    assert sorted(calls) == sorted(shapes)  # one call per shape
    alone = DiffusersImagine(str(tiny_inpainting), steps=2, size=128, batch_size=1)
    for k, (canvas, view) in enumerate(zip(canvases, views, strict=True)):
        assert isinstance(view, Image.Image) and view.size == canvas.image.size
        known = np.asarray(canvas.mask) == 0
        got = np.asarray(view)
        assert (got[known] == np.asarray(canvas.image)[known]).all()
        assert np.abs(got[~known].astype(int) - 127).max() > 0
        by_itself = np.asarray(alone.imagine_many(requests[k : k + 1])[0], float)
        np.testing.assert_allclose(by_itself, np.asarray(view, float), atol=2)


def test_a_canvas_is_centred_in_its_shape_and_cropped_back_even_from_a_rounded_output() -> None:
    """The window cut from a generated shape is the canvas at its working size; a pipeline that
    rounds the size it makes (FLUX Fill: down to 16) is resized back first, never cropped past."""
    from types import SimpleNamespace

    from hoidata.imagine.backends import _padded

    image, box = _scene()
    canvas = make_canvas(image, box, "outpaint")
    size = working_size(*canvas.image.size, 120)
    shape = batch_shape(*size, 120)
    padded, mask, window = _padded(canvas, size, shape)
    assert (
        padded.size == mask.size == shape
        and window[2] - window[0] == size[0]
        and window[3] - window[1] == size[1]
    )
    assert np.array_equal(
        np.asarray(padded.crop(window)), np.asarray(canvas.image.resize(size, Image.Resampling.BICUBIC))
    )
    assert np.array_equal(
        np.asarray(mask.crop(window)), np.asarray(canvas.mask.resize(size, Image.Resampling.NEAREST))
    )
    outside = np.asarray(mask).copy()
    outside[window[1] : window[3], window[0] : window[2]] = 255
    assert (outside == 255).all()  # the padding is generated

    def rounding_pipeline(**kw: Any) -> SimpleNamespace:  # gives back what it got, 16-px rounded
        w, h = kw["width"] // 16 * 16, kw["height"] // 16 * 16
        return SimpleNamespace(images=[im.resize((w, h), Image.Resampling.BICUBIC) for im in kw["image"]])

    backend = DiffusersImagine("unused", steps=1, size=120, batch_size=4, _pipe=rounding_pipeline)
    boxes = [box, np.array([0.0, 0.0, 30.0, 18.0]), np.array([80.0, 30.0, 96.0, 64.0])]
    views = backend.imagine_many([ImagineRequest(image, b, "outpaint", key="a") for b in boxes])
    for b, view in zip(boxes, views, strict=True):
        assert isinstance(view, Image.Image) and view.size == make_canvas(image, b, "outpaint").image.size
        assert not (np.asarray(view) == 0).all(axis=-1).any()  # no black from reading past the output


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    base = {"source": "hico-det", "split": "test", "image": {"bytes": None, "path": "x.jpg"}, "qa": []}
    return pa.Table.from_pylist([base | r for r in rows], SCHEMA)


def test_regions_cut_small_and_union() -> None:
    person = {"bbox": [10, 10, 60, 90], "label": "person", "label_id": 0, "is_human": True}
    cut = {"bbox": [80, 5, 100, 40], "label": "kite", "label_id": 1, "is_human": False}
    small = {"bbox": [40, 40, 50, 48], "label": "cup", "label_id": 2, "is_human": False}
    row = {
        "sample_id": "s",
        "width": 100,
        "height": 100,
        "instances": [person, cut, small],
        "interactions": [{"subject": 0, "object": 2, "verb": "hold", "verb_id": 1, "hoi_id": 1}],
    }
    regions = choose_regions(_table([row]), ("cut", "small", "union"), min_side=16)
    assert list(regions.kind) == ["cut", "small", "union"]
    assert regions.box.tolist() == [[80, 5, 100, 40], [40, 40, 50, 48], [10, 10, 60, 90]]
    assert regions.label == ["kite", "cup", "person hold cup"]
    only_union = choose_regions(_table([row]), ("union", "cut"))
    assert list(only_union.kind) == ["union", "cut"]


@pytest.fixture(scope="module")
def canonical(demo_canonical: Any) -> Path:
    return demo_canonical(24)


def test_stage_writes_a_cache_the_tool_reads_one_row_group_at_a_time(canonical: Path, tmp_path: Path) -> None:
    cfg = ImagineConfig(regions=("cut", "union"), shard_size=5)
    m = imagine(canonical, tmp_path / "cache", cfg, progress=False)
    assert m.counts["in"] == m.counts["out"] + m.counts["rejected"] and m.counts["rows"] > 20
    assert len(m.shards) == 5  # 24 images, 5 per shard
    table = read_table(tmp_path / "cache")
    assert table["error"].null_count == table.num_rows
    for shard in m.shard_files(tmp_path / "cache"):
        meta = pq.read_metadata(shard)
        assert all(meta.row_group(g).num_rows <= ROW_GROUP for g in range(meta.num_row_groups))
    cache = ImagineCache(tmp_path / "cache")
    assert len(cache) == table.num_rows
    row = table.slice(7, 1).to_pylist()[0]
    view = cache.lookup(row["sample_id"], np.array(row["box"]) + np.array([2, -1, 1, 2]), "outpaint")
    assert view is not None and view.size == Image.open(io.BytesIO(row["image"]["bytes"])).size
    assert cache.lookup(row["sample_id"], np.array(row["box"]), "context") is None  # another mode
    assert cache.lookup("nobody", np.array(row["box"]), "outpaint") is None
    again = imagine(canonical, tmp_path / "cache", cfg, progress=False)
    assert again.already_complete


def _slow_imagine(canonical: Path, service: Service) -> list[str]:
    """`hoidata imagine` over the slow local service, three images a shard (some time per shard)."""
    return [
        sys.executable,
        "-m",
        "hoidata",
        "imagine",
        str(canonical),
        "--backend",
        "http",
        "--url",
        service.url + "/ok",
        "--regions",
        "cut,union",
        "--shard-size",
        "3",
        "--concurrency",
        "1",
    ]


def test_kill_during_imagine_then_rerun_loses_and_repeats_nothing(
    canonical: Path, tmp_path: Path, service: Service
) -> None:
    service.delay = 0.15
    args = _slow_imagine(canonical, service)
    child = subprocess.Popen(
        [*args, "-o", str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    data = tmp_path / "killed" / "data"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(data.glob("*.parquet"))) < 2:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = len(list(data.glob("*.parquet")))
    assert 2 <= written < 8 and not (tmp_path / "killed" / "manifest.json").exists()
    service.delay = 0.0
    subprocess.run([*args, "-o", str(tmp_path / "killed")], check=True, capture_output=True)
    subprocess.run([*args, "-o", str(tmp_path / "whole")], check=True, capture_output=True)
    resumed, whole = read_table(tmp_path / "killed"), read_table(tmp_path / "whole")
    keys = lambda t: [(r["sample_id"], tuple(r["box"])) for r in t.select(["sample_id", "box"]).to_pylist()]  # noqa: E731
    assert keys(resumed) == keys(whole) and len(set(keys(resumed))) == resumed.num_rows
    assert read_manifest(tmp_path / "killed").counts == read_manifest(tmp_path / "whole").counts


def test_dp_processes_overwrite_a_finished_run_and_refuse_a_foreign_directory(
    canonical: Path, tmp_path: Path
) -> None:
    """``--dp 2 --overwrite``: the parent clears the output once, then its processes write their
    parts; a directory hoidata did not write, or a --shard part, is refused, one line, and left as
    it was."""
    hoidata = [sys.executable, "-m", "hoidata", "imagine", str(canonical), "--regions", "cut,union"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*hoidata, *args], capture_output=True, text=True)

    def same(out: Path) -> bool:
        return read_table(out).equals(read_table(tmp_path / "one"))

    assert run("-o", str(tmp_path / "one")).returncode == 0
    dp = ["--dp", "2", "-o", str(tmp_path / "dp")]
    for extra in ([], ["--overwrite"]):
        r = run(*dp, *extra)
        assert r.returncode == 0 and same(tmp_path / "dp"), r.stderr
    # a config file's `overwrite: true` clears the output once too, not in every process
    config = tmp_path / "imagine.yaml"
    config.write_text("overwrite: true\ndp: 2\n")
    r = run("--config", str(config), "-o", str(tmp_path / "dp"))
    assert r.returncode == 0 and same(tmp_path / "dp"), r.stderr
    # --dry-run says what would run and touches nothing
    r = run(*dp, "--overwrite", "--dry-run")
    assert r.returncode == 0 and "--shard i/N" in r.stdout and "cleared first" in r.stdout, r.stderr
    assert same(tmp_path / "dp")
    # refused, one line each, nothing deleted: a directory hoidata did not write, and a part of a
    # job other processes share (--shard)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    (tmp_path / "a-file").write_text("")
    for out, extra, message in (
        (foreign, [], "not a hoidata dataset directory"),
        (tmp_path / "dp", ["--shard", "0/2"], "cannot be combined with --shard"),
        (tmp_path / "a-file", [], "the output is a file"),
    ):
        r = run("--dp", "2", "--overwrite", *extra, "-o", str(out))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    assert [f.name for f in foreign.iterdir()] == ["notes.txt"] and same(tmp_path / "dp")
    missing = [
        sys.executable,
        "-m",
        "hoidata",
        "imagine",
        str(tmp_path / "none"),
        "--dp",
        "2",
        "-o",
        str(foreign),
    ]
    r = subprocess.run(missing, capture_output=True, text=True)  # said once, not once per process
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "manifest.json" in r.stderr
    # an empty output directory behind a link is written through, not replaced
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    r = run("--dp", "2", "--overwrite", "-o", str(tmp_path / "link"))
    assert r.returncode == 0 and (tmp_path / "link").is_symlink() and same(tmp_path / "empty"), r.stderr


def test_bad_settings_are_one_line_errors(canonical: Path, tmp_path: Path) -> None:
    for extra, message in (
        (["--backend", "diffusers"], "needs --model"),
        (["--backend", "http"], "needs --url"),
        (["--mode", "edit"], "needs a generative backend"),
        (["--regions", "cut,elbows"], "unknown elbows"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "hoidata", "imagine", str(canonical), "-o", str(tmp_path / "x"), *extra],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


class ImagineThenAnswer:
    """Turn 1 asks to imagine the union of the two boxes in the question; turn 2 answers."""

    name, model = "scripted", "imaginer"

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        out = []
        for c in conversations:
            if len(c) == 1:
                boxes = np.array(
                    re.findall(r"\[(\d+), (\d+), (\d+), (\d+)\]", c[0]["content"][1]["text"]), float
                )
                union = [*boxes[:, :2].min(0), *boxes[:, 2:].max(0)]
                call = json.dumps({"name": "imagine", "arguments": {"bbox_2d": union, "mode": "outpaint"}})
                out.append([Generation(f"<think>Wider.</think>\n<tool_call>\n{call}\n</tool_call>", 50, 20)])
            else:
                out.append([Generation("<think>Seen.</think><answer>hold</answer>", 90, 9)])
        return out


def test_gen_cot_serves_imagine_from_the_cache(tiny_boxes: Any, service: Service, tmp_path: Path) -> None:
    boxed = tiny_boxes(10)
    cache_cfg = ImagineConfig(backend="http", url=service.url + "/ok", regions=("union",))
    imagine(boxed, tmp_path / "cache", cache_cfg, progress=False)
    cfg = GenCotConfig(
        engine="scripted",
        model="imaginer",
        n=1,
        max_turns=2,
        tools=("imagine",),
        imagine_cache=str(tmp_path / "cache"),
        imagine_backend="none",
    )
    m = gen_cot(boxed, tmp_path / "cot", cfg, ImagineThenAnswer, progress=False)
    rows = read_table(tmp_path / "cot").to_pylist()
    assert len(rows) == m.counts["rows"] > 5
    generated = 0
    for r in rows:
        # with no live backend, a view can only come from the cache: a miss would be a tool error
        assert len(r["images"]) == 2, r["error"]  # the prompt's image and the imagined view
        view = np.asarray(Image.open(io.BytesIO(r["images"][1]["bytes"])).convert("RGB"))
        generated += int((view == MAGENTA).all(axis=2).any())  # the service filled beyond the border
    assert 0 < generated <= len(rows)
    # tool results are stored as user turns after the prompt (see hoidata.gen.records)
    results = [[b["text"] for b in r["messages"][2]["content"] if b["text"]] for r in rows]
    assert all("Imagined view" in "".join(t) for t in results), results[0]


def test_sigterm_stops_cleanly_and_the_rerun_resumes(
    canonical: Path, tmp_path: Path, service: Service
) -> None:
    service.delay = 0.15
    args = [*_slow_imagine(canonical, service), "-o", str(tmp_path / "out")]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    data = tmp_path / "out" / "data"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(data.glob("*.parquet"))) < 1:
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "manifest.json").exists()
    for shard in data.glob("*.parquet"):  # what is there is whole
        pq.read_table(shard)
    service.delay = 0.0
    subprocess.run(args, check=True, capture_output=True)
    m = read_manifest(tmp_path / "out")
    assert m.counts["in"] == read_manifest(canonical).counts["out"] and len(m.shards) == 8


def test_grpo_rollouts_imagine_from_the_cache(
    canonical: Path, tiny_vlm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GRPO's environment_factory, as `train grpo` builds it from a recipe's `imagine_cache:` key,
    with no live backend: an imagine call succeeds only if the cache answers it."""
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from tiny_fixtures import cpu_grpo_config, scripted_generate
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOTrainer

    from hoidata.io.images import open_image
    from hoidata.profiles import get_profile
    from hoidata.profiles.chat import use_tool_template
    from hoidata.trainers.recipe import load_recipe
    from hoidata.trainers.run import environment_factory

    imagine(canonical, tmp_path / "cache", ImagineConfig(regions=("union",)), progress=False)
    view = read_table(tmp_path / "cache").slice(0, 1).to_pylist()[0]
    source = read_table(canonical).filter(
        pa.compute.equal(read_table(canonical)["sample_id"], view["sample_id"])
    )
    row = source.to_pylist()[0]
    image = open_image(row["image"], read_manifest(canonical).image_root)
    profile = get_profile("qwen3-vl")
    bbox = profile.to_model([view["box"]], row["width"], row["height"])[0].tolist()
    recipe = load_recipe(
        None,
        {
            "method": "grpo",
            "model": "m",
            "data": ["d"],
            "profile": "qwen3-vl",
            "tools": ["imagine"],
            "imagine_cache": str(tmp_path / "cache"),
            "imagine_backend": "none",
        },
    )
    path = tiny_vlm("qwen3-vl")
    processor = use_tool_template(AutoProcessor.from_pretrained(path), "qwen3-vl")
    model = AutoModelForImageTextToText.from_pretrained(path)
    tok = processor.tokenizer
    response_id = tok.convert_tokens_to_ids("<tool_response>")
    call = json.dumps({"name": "imagine", "arguments": {"bbox_2d": bbox, "mode": "outpaint"}})
    turns = [
        f"<think>Wider.</think>\n<tool_call>\n{call}\n</tool_call>",
        "<think>Seen.</think><answer>hold</answer>",
    ]
    model.generate = scripted_generate(
        tok, lambda prompt: turns[int((prompt == response_id).sum())] + "<|im_end|>"
    )
    calls: list[Any] = []

    def spy(prompts: list, completions: list, environments: list, **kwargs: Any) -> list[float]:
        calls.extend([(c.name, c.ok, c.error) for c in e.calls] for e in environments)
        return [0.0] * len(completions)

    data = {
        "prompt": [{"role": "user", "content": "What is the person doing? Think, then answer."}],
        "images": [image],
        "task": "referring",
        "width": row["width"],
        "height": row["height"],
        "pairs": [],
        "sample_id": row["sample_id"],
    }
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[spy],
        args=cpu_grpo_config(tmp_path / "run", max_completion_length=512),
        train_dataset=Dataset.from_list([data] * 2),
        processing_class=processor,
        environment_factory=environment_factory(recipe, profile),
    )
    trainer.train()
    assert calls and all(c == [("imagine", True, None)] for c in calls), calls


def test_failed_regions_are_rows_and_a_rerun_makes_exactly_those(
    canonical: Path, service: Service, tmp_path: Path
) -> None:
    """The service fails its first two requests: two rows carry the error and no image, the manifest
    counts them, and the rerun asks for those two regions only and fills them in place."""
    cfg = ImagineConfig(
        backend="http",
        url=service.url + "/flaky",
        regions=("cut", "union"),
        shard_size=5,
        retries=0,
        concurrency=1,
    )
    first = imagine(canonical, tmp_path / "cache", cfg, progress=False)
    table = read_table(tmp_path / "cache")
    failed = [i for i, e in enumerate(table["error"].to_pylist()) if e is not None]
    assert len(failed) == 2 and first.counts["failed"] == 2
    asked = service.hits["/flaky"]
    again = imagine(canonical, tmp_path / "cache", cfg, progress=False)
    assert again.retried == {"tried": 2, "made": 2, "failed": 0}
    images = {r["sample_id"] for r in table.take(failed).to_pylist()}
    regions_of_failed_images = sum(r["sample_id"] in images for r in table.to_pylist())
    assert 2 <= service.hits["/flaky"] - asked <= regions_of_failed_images < table.num_rows
    after = read_table(tmp_path / "cache")
    assert after["error"].null_count == after.num_rows
    keep = [i for i in range(table.num_rows) if i not in failed]
    assert after.take(keep).equals(table.take(keep))  # every other row as it was
    assert after.select(["sample_id", "region", "box"]).equals(table.select(["sample_id", "region", "box"]))
