"""``hoidata push``: the repository tree loads back with `datasets` exactly as the source dataset, and
the upload, seen at the HTTP boundary by a local server that answers like the Hub, sends that tree
byte for byte with the token in the Authorization header and nowhere in the output."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from hoidata.demo import make_raw
from hoidata.errors import HoidataError
from hoidata.io import Output, read_manifest, read_table, run_stage
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.publish import build_repo_tree
from hoidata.schemas.canonical import IMAGE, REJECTS_SCHEMA

TOKEN = "hf_test_" + "q7Zr1xYk" * 4  # fake, but shaped like a real token


@pytest.fixture(scope="module")
def hico(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A converted synthetic train/test pair with images NOT embedded (push must embed them)."""
    root = tmp_path_factory.mktemp("hico")
    anns = make_raw(root / "raw", n_train=14, n_test=5)
    out = {}
    for split, ann in anns.items():
        cfg = ConvertConfig(
            source="hico",
            annotations=str(ann),
            split=split,
            images=str(root / "raw" / "images" / split),
            box_origin="one-based",
            shard_size=4,  # several input shards, re-cut by size on the way out
        )
        convert(cfg, root / f"hico-{split}", progress=False)
        out[split] = root / f"hico-{split}"
    return out


def front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def tree_files(tree: Path) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}


def test_dry_run_tree_loads_back_like_the_source(hico: dict[str, Path], tmp_path: Path) -> None:
    import datasets

    tree = tmp_path / "tree"
    files = build_repo_tree(
        [hico["train"], hico["test"]], tree, repo_id="me/hico", max_shard_size="25kB", examples=3
    )
    names = [f.as_posix() for f in files]
    shards = [n for n in names if n.startswith("data/")]
    train_shards = [n for n in shards if n.startswith("data/train-")]
    assert len(train_shards) >= 2, "the size limit should have cut train into several shards"
    n = len(train_shards)
    assert train_shards == [f"data/train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert sorted(names) == sorted(
        ["README.md", "hoidata_manifest-train.json", "hoidata_manifest-test.json"]
        + [f"assets/example-{k}.png" for k in range(3)]
        + shards
    )
    assert not list(tmp_path.glob(".*partial*")), "no leftovers of the build"

    # the card: YAML that parses, configs whose globs select exactly the shards, true counts
    meta = front_matter(tree / "README.md")
    (config,) = meta["configs"]
    assert config["config_name"] == "default" and config["default"] is True
    assert config["data_files"] == [
        {"split": "train", "path": "data/train-*"},
        {"split": "test", "path": "data/test-*"},
    ]
    for entry in config["data_files"]:
        assert fnmatch.filter(names, entry["path"]) == [s for s in shards if s.startswith(entry["path"][:-1])]
    manifests = {s: read_manifest(hico[s]) for s in hico}
    splits = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert splits == {s: m.counts["out"] for s, m in manifests.items()}
    card = (tree / "README.md").read_text(encoding="utf-8")
    assert "14 in → 13 out, 1 rejected" in card and "stage `convert`" in card
    assert "box_origin: one-based" in card  # the manifest's config, as YAML
    for k in range(3):
        assert f"](assets/example-{k}.png)" in card
        with Image.open(tree / f"assets/example-{k}.png") as im:
            assert im.format == "PNG" and max(im.size) <= 640
    for s in hico:
        assert (tree / f"hoidata_manifest-{s}.json").read_bytes() == (hico[s] / "manifest.json").read_bytes()

    # `datasets` reads the folder through the card: Image type, decoded images, same rows and boxes
    ds = datasets.load_dataset(str(tree))
    assert set(ds) == {"train", "test"}
    for split, src in hico.items():
        want = read_table(src)
        got = ds[split]
        assert isinstance(got.features["image"], datasets.Image) and got.features["image"].decode
        assert got.num_rows == want.num_rows
        for col in ("sample_id", "width", "height", "instances", "interactions"):
            assert got[col] == want.column(col).to_pylist(), col
        first = got[0]["image"]
        assert isinstance(first, Image.Image) and first.size == (got[0]["width"], got[0]["height"])
        # the embedded bytes are the files' own bytes; path keeps the relative file name
        root = Path(manifests[split].config["images"])
        raw = got.cast_column("image", datasets.Image(decode=False))
        want_paths = want.column("image").combine_chunks().field("path").to_pylist()
        for row, rel in zip(raw["image"], want_paths, strict=True):
            assert row["path"] == rel and row["bytes"] == (root / rel).read_bytes()

    # a rebuild gives the same bytes: what makes an interrupted upload resumable
    again = tmp_path / "again"
    build_repo_tree([hico["train"], hico["test"]], again, repo_id="me/hico", max_shard_size="25kB")
    assert tree_files(again) == tree_files(tree)


def test_sft_images_list_and_messages(tmp_path: Path) -> None:
    import datasets

    images = tmp_path / "imgs"
    (images / "a").mkdir(parents=True)
    colours = {"a/red.png": (255, 0, 0), "a/green.png": (0, 255, 0), "blue.jpg": (0, 0, 255)}
    for name, colour in colours.items():
        Image.new("RGB", (40, 30), colour).save(images / name)
    embedded = io.BytesIO()
    Image.new("RGB", (20, 10), (9, 9, 9)).save(embedded, format="PNG")
    part = pa.struct([("type", pa.string()), ("text", pa.string())])
    message = pa.struct([("role", pa.string()), ("content", pa.list_(part))])
    schema = pa.schema(
        [("sample_id", pa.string()), ("images", pa.list_(IMAGE)), ("messages", pa.list_(message))]
    )
    features = {
        "sample_id": {"dtype": "string", "_type": "Value"},
        "images": {"feature": {"decode": False, "_type": "Image"}, "_type": "List"},
        "messages": {
            "feature": {
                "role": {"dtype": "string", "_type": "Value"},
                "content": {
                    "feature": {
                        "type": {"dtype": "string", "_type": "Value"},
                        "text": {"dtype": "string", "_type": "Value"},
                    },
                    "_type": "List",
                },
            },
            "_type": "List",
        },
    }

    def chat(question: str, answer: str, n_images: int) -> list[dict[str, Any]]:
        parts = [{"type": "image", "text": None}] * n_images + [{"type": "text", "text": question}]
        return [
            {"role": "user", "content": parts},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]

    rows = [
        {
            "sample_id": "s0",
            "images": [{"bytes": None, "path": "a/red.png"}, {"bytes": None, "path": "a/green.png"}],
            "messages": chat("Which person rides the bicycle?", '{"bbox_2d": [1, 2, 30, 20]}', 2),
        },
        {
            "sample_id": "s1",
            "images": [{"bytes": embedded.getvalue(), "path": "kept.png"}],
            "messages": chat("What is held?", "a cup", 1),
        },
        {"sample_id": "s2", "images": [{"bytes": None, "path": "blue.jpg"}], "messages": chat("?", "!", 1)},
        {"sample_id": "s3", "images": [], "messages": chat("No image here.", "ok", 0)},
    ]
    output = Output(
        stage="build-sft",
        config={"images": str(images), "task": "referring"},
        input_fingerprint="f" * 32,
        features=features,
        schema=schema,
        split="train",
    )
    table = pa.Table.from_pylist(rows, schema)
    run_stage(tmp_path / "sft", output, [len(rows)], lambda _: (table, REJECTS_SCHEMA.empty_table()))

    tree = tmp_path / "tree"
    files = build_repo_tree(tmp_path / "sft", tree, repo_id="me/sft", examples=2)
    assert [f.as_posix() for f in files] == [
        "README.md",
        "assets/example-0.png",
        "assets/example-1.png",
        "data/train-00000-of-00001.parquet",
        "hoidata_manifest.json",
    ]
    ds = datasets.load_dataset(str(tree), split="train")
    assert ds.features["images"] == datasets.List(datasets.Image())
    assert ds["sample_id"] == ["s0", "s1", "s2", "s3"]
    pixels = [[im.convert("RGB").getpixel((0, 0)) for im in r] for r in ds["images"]]
    assert pixels[:2] == [[(255, 0, 0), (0, 255, 0)], [(9, 9, 9)]] and pixels[3] == []
    assert pixels[2][0][2] > 250 and ds[2]["images"][0].format == "JPEG"  # JPEG: as stored, not re-encoded
    assert ds["messages"] == [r["messages"] for r in rows]
    raw = ds.cast_column("images", datasets.List(datasets.Image(decode=False)))["images"]
    assert raw[0] == [
        {"bytes": (images / "a/red.png").read_bytes(), "path": "a/red.png"},
        {"bytes": (images / "a/green.png").read_bytes(), "path": "a/green.png"},
    ]
    assert raw[1] == [{"bytes": embedded.getvalue(), "path": "kept.png"}]  # already embedded: untouched
    assert raw[2] == [{"bytes": (images / "blue.jpg").read_bytes(), "path": "blue.jpg"}]
    card = (tree / "README.md").read_text(encoding="utf-8")
    assert "user: <image> <image> Which person rides the bicycle?" in card
    assert 'assistant: {"bbox_2d": [1, 2, 30, 20]}' in card and "(+1 more images)" in card
    assert front_matter(tree / "README.md")["task_categories"] == ["image-text-to-text"]
    with Image.open(tree / "assets/example-0.png") as im:
        assert im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)  # the first image's thumbnail


def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``hoidata ARGS`` in this process: exit code, stdout, stderr."""
    from hoidata.cli import main

    monkeypatch.setattr(sys, "argv", ["hoidata", *args])
    with pytest.raises(SystemExit) as e:
        main(list(args))  # given: this process keeps Python's and pyarrow's defaults
    captured = capsys.readouterr()
    return int(e.value.code or 0), captured.out, captured.err


# --------------------------------------------------------------------------- a Hub at the HTTP boundary


class FakeHub(ThreadingHTTPServer):
    """Answers the endpoints huggingface_hub 2.4 calls for whoami, create_repo, create_branch and
    upload_folder over plain LFS, and applies commits to an in-memory repository."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.base = f"http://127.0.0.1:{self.server_port}"
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.created: list[dict[str, Any]] = []
        self.branches: list[str] = []
        self.lfs: dict[str, bytes] = {}
        self.repo: dict[str, bytes] = {}  # path → content, after the commits
        self.commits: list[list[dict[str, Any]]] = []
        self.unknown: list[str] = []


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._route("GET", b"")

    def do_POST(self) -> None:
        self._route("POST", self._body())

    def do_PUT(self) -> None:
        self._route("PUT", self._body())

    def _route(self, method: str, body: bytes) -> None:
        hub, path = self.server, self.path.split("?")[0]
        auth = self.headers.get("Authorization")
        hub.requests.append((method, path, auth))
        if path.startswith("/api/") and auth != f"Bearer {TOKEN}":
            return self._send(401, {"error": "Invalid credentials in Authorization header"})
        repo = "/api/datasets/me/hico"
        if (method, path) == ("GET", "/api/whoami-v2"):
            return self._send(200, {"type": "user", "name": "me"})
        if (method, path) == ("POST", "/api/repos/create"):
            hub.created.append(json.loads(body))
            return self._send(200, {"url": f"{hub.base}/datasets/me/hico"})
        if method == "POST" and path.startswith(f"{repo}/branch/"):
            hub.branches.append(path.rsplit("/", 1)[1])
            return self._send(200, {})
        if (method, path) == ("POST", "/api/validate-yaml"):
            yaml.safe_load(json.loads(body)["content"].split("---\n")[1])
            return self._send(200, {"errors": [], "warnings": []})
        if method == "GET" and path.startswith(f"{repo}/tree/"):
            entries = [
                {"type": "file", "path": p, "size": len(c), "oid": "0" * 40} for p, c in hub.repo.items()
            ]
            return self._send(200, entries)
        if method == "POST" and path.startswith(f"{repo}/preupload/"):
            files = json.loads(body)["files"]
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "regular" if f["path"].endswith((".md", ".json")) else "lfs",
                }
                | {"shouldIgnore": False, "oid": None}
                for f in files
            ]
            return self._send(200, {"files": modes})
        if (method, path) == ("POST", "/datasets/me/hico.git/info/lfs/objects/batch"):
            objects = [
                {
                    "oid": o["oid"],
                    "size": o["size"],
                    "actions": {
                        "upload": {"href": f"{hub.base}/lfs-storage/{o['oid']}"},
                        "verify": {"href": f"{hub.base}/api/lfs-verify"},
                    },
                }
                for o in json.loads(body)["objects"]
            ]
            return self._send(200, {"transfer": "basic", "objects": objects})
        if method == "PUT" and path.startswith("/lfs-storage/"):
            oid = path.rsplit("/", 1)[1]
            assert hashlib.sha256(body).hexdigest() == oid
            hub.lfs[oid] = body
            return self._send(200, {})
        if (method, path) == ("POST", "/api/lfs-verify"):
            return self._send(200 if json.loads(body)["oid"] in hub.lfs else 404, {})
        if method == "POST" and path.startswith(f"{repo}/commit/"):
            ops = [json.loads(line) for line in body.splitlines() if line.strip()]
            hub.commits.append(ops)
            for op in ops:
                v = op["value"]
                if op["key"] == "file":
                    hub.repo[v["path"]] = base64.b64decode(v["content"])
                elif op["key"] == "lfsFile":
                    hub.repo[v["path"]] = hub.lfs[v["oid"]]
                elif op["key"] == "deletedFile":
                    del hub.repo[v["path"]]
            return self._send(
                200, {"commitUrl": f"{hub.base}/datasets/me/hico/commit/abc", "commitOid": "a" * 40}
            )
        hub.unknown.append(f"{method} {self.path}")
        return self._send(404, {"error": "not found"})


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_cli(
    *args: str, endpoint: str, home: Path, token_env: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m hoidata`` with the Hub client pointed at ``endpoint`` and no cached login."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),  # no cached token from the machine
        "HF_HUB_DISABLE_XET": "1",  # the plain LFS protocol, which this server speaks
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    if token_env:
        env["HF_TOKEN"] = token_env
    return subprocess.run(
        [sys.executable, "-m", "hoidata", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_upload_sends_the_tree_with_the_token(
    hico: dict[str, Path],
    hub: FakeHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub.repo["data/train-00007-of-00009.parquet"] = b"stale shard of an earlier push"
    hub.repo["notes.txt"] = b"someone else's file"
    staged = tmp_path / "staged"
    r = run_cli(
        "push",
        str(hico["train"]),
        str(hico["test"]),
        "--repo-id",
        "me/hico",
        "--private",
        "--token",
        TOKEN,
        "--revision",
        "v1",
        "--max-shard-size",
        "25kB",
        "--out",
        str(staged),
        endpoint=hub.base,
        home=tmp_path / "hf",
    )
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout + r.stderr
    assert all(TOKEN.encode() not in content for content in tree_files(staged).values())
    assert hub.unknown == []
    assert "pushed to" in r.stdout and "data/train-00000-of-" in r.stdout

    # the dry-run tree of the same inputs is what the Hub now holds, byte for byte
    dry = tmp_path / "dry"
    code, out, err = cli(
        monkeypatch,
        capsys,
        "push",
        str(hico["train"]),
        str(hico["test"]),
        "--repo-id",
        "me/hico",
        "--max-shard-size",
        "25kB",
        "--dry-run",
        "--out",
        str(dry),
    )
    assert code == 0, err
    assert out.endswith("dry run: nothing uploaded\n") and "data/train-00000-of-" in out
    assert tree_files(dry) == tree_files(staged)
    assert hub.repo == tree_files(dry) | {"notes.txt": b"someone else's file"}  # stale shard deleted
    lfs = [op["value"]["path"] for c in hub.commits for op in c if op["key"] == "lfsFile"]
    assert lfs and all(p.endswith((".parquet", ".png")) for p in lfs)

    assert hub.created == [{"name": "hico", "organization": "me", "visibility": "private", "type": "dataset"}]
    assert hub.branches == ["v1"]
    commit_paths = [p for m, p, _ in hub.requests if m == "POST" and "/commit/" in p]
    assert commit_paths == ["/api/datasets/me/hico/commit/v1"]
    api_calls = [(m, p, a) for m, p, a in hub.requests if p.startswith("/api/") or p.endswith("/batch")]
    assert api_calls and all(a == f"Bearer {TOKEN}" for _, _, a in api_calls)
    assert not [p for m, p, a in hub.requests if p.startswith("/lfs-storage/") and a], "no token to storage"


def test_hub_errors_are_one_line_without_the_token(
    hico: dict[str, Path],
    hub: FakeHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from huggingface_hub import constants

    # in-process this time: the client's configuration, which the environment sets at import
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-cached-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    args = ("push", str(hico["test"]), "--repo-id", "me/hico")

    monkeypatch.setattr(constants, "ENDPOINT", closed)
    code, out, err = cli(monkeypatch, capsys, *args, "--token", TOKEN)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: checking the token: cannot reach the Hub at {closed} (")
    assert TOKEN not in err

    monkeypatch.setattr(constants, "ENDPOINT", hub.base)
    wrong = TOKEN[::-1]  # from HF_TOKEN this time: the Hub answers 401
    monkeypatch.setenv("HF_TOKEN", wrong)
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and err.count("\n") == 1 and "refused the token (HTTP 401)" in err
    assert wrong not in out + err
    assert hub.requests == [("GET", "/api/whoami-v2", f"Bearer {wrong}")]  # nothing built or sent after

    monkeypatch.delenv("HF_TOKEN")
    code, out, err = cli(monkeypatch, capsys, *args)
    assert (
        code == 2
        and err == "error: no Hugging Face token: pass --token, set HF_TOKEN or run `hf auth login`\n"
    )


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_exit_2(
    hico: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "tree")
    code, _, err = cli(
        monkeypatch, capsys, "push", str(tmp_path), "--repo-id", "me/x", "--dry-run", "--out", out
    )
    assert (
        code == 2
        and err == f"error: {tmp_path}: not a complete hoidata dataset directory (no manifest.json)\n"
    )

    code, _, err = cli(monkeypatch, capsys, "push", str(hico["test"]), "--repo-id", "me/x", "--dry-run")
    assert code == 2 and err == "error: --dry-run needs --out DIR (where the tree is built)\n"

    code, _, err = cli(
        monkeypatch, capsys, "push", str(hico["test"]), "--repo-id", "no/such/repo", "--dry-run", "-o", out
    )
    assert code == 2 and "--repo-id" in err and err.count("\n") == 1

    code, _, err = cli(
        monkeypatch,
        capsys,
        "push",
        str(hico["test"]),
        "--repo-id",
        "me/x",
        "--max-shard-size",
        "lots",
        "--dry-run",
        "-o",
        out,
    )
    assert code == 2 and "--max-shard-size must look like 500MB" in err

    # the tree folder must not be something else's
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("x")
    code, _, err = cli(
        monkeypatch,
        capsys,
        "push",
        str(hico["test"]),
        "--repo-id",
        "me/x",
        "--dry-run",
        "-o",
        str(tmp_path / "precious"),
    )
    assert code == 2 and "refusing to replace it" in err
    assert (tmp_path / "precious" / "thesis.tex").exists()


def test_missing_image_names_shard_record_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    anns = make_raw(tmp_path / "raw", n_train=3, n_test=3)
    images = tmp_path / "raw" / "images" / "test"
    cfg = ConvertConfig(
        source="hico", annotations=str(anns["test"]), split="test", images=str(images), box_origin="one-based"
    )
    convert(cfg, tmp_path / "ds", progress=False)
    (images / "DEMO_test_00000001.png").unlink()
    out = tmp_path / "tree"
    code, _, err = cli(
        monkeypatch, capsys, "push", str(tmp_path / "ds"), "--repo-id", "me/x", "--dry-run", "-o", str(out)
    )
    shard = tmp_path / "ds" / "data" / "test-00000-of-00001.parquet"
    assert code == 2
    assert (
        err
        == f"error: {shard}: record 1: field 'image': image not found: {images / 'DEMO_test_00000001.png'}\n"
    )
    assert not out.exists() and not list(tmp_path.glob(".tree*")), "a failed build leaves nothing behind"

    # the image root moved: --images points at the new place
    moved = tmp_path / "moved"
    images.rename(moved)
    Image.new("RGB", (8, 8)).save(moved / "DEMO_test_00000001.png")
    code, _, err = cli(
        monkeypatch, capsys, "push", str(tmp_path / "ds"), "--repo-id", "me/x", "--dry-run", "-o", str(out)
    )
    assert code == 2 and "does not exist: pass --images" in err
    code, _, err = cli(
        monkeypatch,
        capsys,
        "push",
        str(tmp_path / "ds"),
        "--repo-id",
        "me/x",
        "--dry-run",
        "-o",
        str(out),
        "--images",
        str(moved),
    )
    assert code == 0, err
    assert pq.read_metadata(out / "data" / "test-00000-of-00001.parquet").num_rows == 3


def test_build_repo_tree_rejects_clashing_splits(hico: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(HoidataError, match="split 'test' also comes from"):
        build_repo_tree([hico["test"], hico["test"]], tmp_path / "t")
