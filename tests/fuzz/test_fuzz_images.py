"""Hostile image files through every stage that opens images: each is a record-level reject with a
reason (or, for odd but valid files, an RGB image in the stored frame), never a crashed shard."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hoidata.io import read_manifest, read_table
from hoidata.io.images import MAX_IMAGE_PIXELS, decode_image, file_under, image_bytes, path_under, probe
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.imagine import ImagineConfig, imagine
from hoidata.show.thumbnails import Thumbnails


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width × height`` (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def _save(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _variants(original: Image.Image) -> dict[str, bytes | None]:
    """name → file bytes (None: made on disk as a link)."""
    jpeg = _save(original, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    grey16 = Image.fromarray(np.asarray(original.convert("L"), np.uint16) * 257).convert("I;16")
    return {
        "truncated": jpeg[: len(jpeg) // 2],
        "empty": b"",
        "garbage": os.urandom(512),
        "bomb": _png_header_only(40_000, 40_000),
        "cmyk": _save(original.convert("CMYK"), "JPEG"),
        "grey16": _save(grey16, "PNG"),
        "palette": _save(original.convert("P"), "PNG"),
        "alpha": _save(original.convert("RGBA"), "PNG"),
        "exif_rotated": _save(original, "JPEG", exif=exif),
        "escape": None,
        "loop": None,
    }


BROKEN = {"truncated", "empty", "garbage", "bomb", "escape", "loop"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's test scenes, converted without image checks, with images replaced by hostile files."""
    from hoidata.demo import make_raw

    root = tmp_path_factory.mktemp("hostile")
    files = make_raw(root / "raw", n_train=1, n_test=len(_variants(Image.new("RGB", (4, 4)))) + 3)
    images = root / "raw" / "images" / "test"
    cfg = ConvertConfig(
        source="hico",
        annotations=str(files["test"]),
        split="test",
        images=str(images),
        box_origin="one-based",
    )
    convert(cfg, root / "canonical", progress=False)
    table = read_table(root / "canonical")
    names = table["image"].combine_chunks().field("path").to_pylist()
    (root / "outside.jpg").write_bytes((images / names[0]).read_bytes())
    kinds = {}
    for name, kind in zip(names, _variants(Image.new("RGB", (4, 4))), strict=False):
        path = images / name
        data = _variants(Image.open(path).convert("RGB"))[kind]  # this record's own pixels, made hostile
        path.unlink()
        if kind == "escape":
            path.symlink_to(root / "outside.jpg")
        elif kind == "loop":
            path.symlink_to(path)
        else:
            path.write_bytes(data)  # type: ignore[arg-type]
        kinds[table["sample_id"][names.index(name)].as_py()] = kind
    boxes(root / "canonical", root / "boxes", BoxesConfig())
    return {"root": root, "kinds": kinds, "n": table.num_rows, "images": images}


def _rejected(out: Path) -> dict[str, str]:
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    return {r["sample_id"].split(":")[0]: r["reason"] for r in rejects if r["sample_id"]}


def test_decoding_rules(hostile: dict[str, Any]) -> None:
    images = hostile["images"]
    for sid, kind in hostile["kinds"].items():
        name = next(p.name for p in images.iterdir() if p.name.startswith(sid.rsplit("/", 1)[1]))
        if kind in BROKEN:
            with pytest.raises(Exception):  # noqa: B017 - each kind raises its own error
                decode_image(image_bytes({"bytes": None, "path": name}, images))
            continue
        im = decode_image(image_bytes({"bytes": None, "path": name}, images))
        assert im.mode == "RGB"
        stored = Image.open(images / name)
        assert im.size == stored.size  # the stored frame: EXIF orientation is not applied
        if kind == "grey16":
            assert 20 < np.asarray(im).mean() < 235  # scaled from 16 bits, not clipped to white
    with pytest.raises(ValueError, match="leaves the image root"):
        path_under(images, "../outside.jpg")
    assert MAX_IMAGE_PIXELS < 40_000 * 40_000


@pytest.mark.parametrize("mode", ["embed", "resize", "cof"])
def test_build_sft_rejects_each_broken_image(hostile: dict[str, Any], tmp_path: Path, mode: str) -> None:
    cfg = (
        BuildSftConfig(task="cof", images="path", tool_share=1.0)
        if mode == "cof"
        else BuildSftConfig(images=mode)
    )
    m = build_sft(hostile["root"] / "boxes", tmp_path / "sft", cfg)
    assert m.counts["in"] == m.counts["out"] + m.counts["rejected"] == hostile["n"]
    rejected = _rejected(tmp_path / "sft")
    broken = {sid for sid, kind in hostile["kinds"].items() if kind in BROKEN}
    if mode == "embed":  # headers only: a truncated body is found by whoever decodes it
        broken.discard(next(s for s, k in hostile["kinds"].items() if k == "truncated"))
    assert set(rejected) == broken, rejected
    reasons = {hostile["kinds"][sid]: reason for sid, reason in rejected.items()}
    assert "empty file" in reasons["empty"] and "not an image format" in reasons["garbage"]
    assert not any("BytesIO" in r for r in reasons.values())  # each names the file, not a buffer
    kept = {r["source_id"] for r in read_table(tmp_path / "sft", ["source_id"]).to_pylist()}
    assert not kept & broken


def test_imagine_and_convert_reject_broken_images(hostile: dict[str, Any], tmp_path: Path) -> None:
    m = imagine(
        hostile["root"] / "canonical", tmp_path / "views", ImagineConfig(regions=("union",)), progress=False
    )
    assert m.counts["in"] == m.counts["out"] + m.counts["rejected"]
    broken = {sid for sid, kind in hostile["kinds"].items() if kind in BROKEN}
    assert set(_rejected(tmp_path / "views")) == broken
    files = read_manifest(hostile["root"] / "canonical").config
    cfg = ConvertConfig(
        source="hico",
        annotations=files["annotations"],
        split="test",
        images=str(hostile["images"]),
        box_origin="one-based",
    )
    m = convert(cfg, tmp_path / "checked", progress=False)
    reasons = _rejected(tmp_path / "checked")
    header_broken = {sid for sid, kind in hostile["kinds"].items() if kind in BROKEN - {"truncated"}}
    assert set(reasons) == header_broken, reasons
    assert all(len(r.splitlines()) == 1 for r in reasons.values())


def test_files_are_read_only_from_inside_the_root(tmp_path: Path) -> None:
    """The fast reader refuses what the full resolver refuses: a symlinked directory or file that
    leads out, a loop, ``..``; a symlink that stays inside is followed; a missing file is missing."""
    root, outside = tmp_path / "images", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "a.jpg").write_bytes(b"inside")
    (outside / "b.jpg").write_bytes(b"secret")
    (root / "out").symlink_to(outside)  # a directory leading out
    (root / "link.jpg").symlink_to(outside / "b.jpg")  # a file leading out
    (root / "alias.jpg").symlink_to(root / "sub" / "a.jpg")  # a file staying in
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    read = lambda name: image_bytes({"bytes": None, "path": name}, root)  # noqa: E731
    assert read("sub/a.jpg") == read("./sub//a.jpg") == read("alias.jpg") == b"inside"
    for name in ("out/b.jpg", "link.jpg", "../outside/b.jpg", "/etc/hostname"):
        with pytest.raises(ValueError, match="image root"):
            read(name)
    with pytest.raises((RuntimeError, OSError)):
        read("loop.jpg")
    with pytest.raises(FileNotFoundError):
        read("sub/missing.jpg")
    with pytest.raises(FileNotFoundError):
        read("nowhere/a.jpg")


def test_a_relative_image_root_follows_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast reader remembers resolved directories; a relative root must still mean the current
    directory's (a Ray worker changes directory between jobs)."""
    for where, text in (("a", b"from a"), ("b", b"from b")):
        (tmp_path / where / "imgs" / "sub").mkdir(parents=True)
        (tmp_path / where / "imgs" / "sub" / "x.jpg").write_bytes(text)
    for where, text in (("a", b"from a"), ("b", b"from b"), ("a", b"from a")):
        monkeypatch.chdir(tmp_path / where)
        assert image_bytes({"bytes": None, "path": "sub/x.jpg"}, "imgs") == text
        assert Path(file_under("imgs", "sub/x.jpg")).read_bytes() == text


def test_a_fifo_or_directory_among_the_images_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: every reader refuses anything but a regular
    file first (named directly or through a symlink), so a planted one cannot hang a stage."""
    root = tmp_path / "images"
    (root / "dir.jpg").mkdir(parents=True)
    os.mkfifo(root / "pipe.jpg")
    (root / "alias.jpg").symlink_to(root / "pipe.jpg")
    (root / "ok.jpg").write_bytes(b"bytes")
    for name in ("pipe.jpg", "alias.jpg", "dir.jpg"):
        with pytest.raises(ValueError, match="not a regular file"):
            image_bytes({"bytes": None, "path": name}, root)
        with pytest.raises(ValueError, match="not a regular file"):
            file_under(root, name)
        for embed in (False, True):
            assert "not a regular file" in str(probe(root / name, embed, root).error)
    assert image_bytes({"bytes": None, "path": "ok.jpg"}, root) == b"bytes"
    assert file_under(root, "ok.jpg") == str(root.resolve() / "ok.jpg")
    site = Thumbnails(tmp_path / "site")  # hoidata show: under a root, or a path given whole
    for ref in (site.image({"bytes": None, "path": "pipe.jpg"}, str(root)), site.file(root / "pipe.jpg")):
        assert ref.thumb is None and "not a regular file" in str(ref.error)


def test_show_follows_the_image_rules(hostile: dict[str, Any], tmp_path: Path) -> None:
    """hoidata show puts small files in as they are, but only after the rules every stage follows:
    nothing from outside the image root, an unreadable header is an unreadable image with its
    reason, and pages show the stored frame (no EXIF rotation)."""
    from hoidata.show import ShowOptions, write_site

    site = write_site(
        hostile["root"] / "canonical", tmp_path / "site", ShowOptions(workers=0, progress=False)
    )
    failed = " ".join(site.thumbnails_failed)
    names = {kind: sid.rsplit("/", 1)[1] for sid, kind in hostile["kinds"].items()}
    for kind in ("empty", "garbage", "bomb"):
        assert names[kind] in failed
    secret = (hostile["root"] / "outside.jpg").read_bytes()
    put_in = [p for p in (tmp_path / "site").rglob("*") if p.is_file()]
    assert put_in and all(p.read_bytes() != secret for p in put_in)  # the symlink out was not followed
    pages = "".join(p.read_text() for p in put_in if p.suffix == ".html")
    assert pages.count("image not readable") >= 2  # the escape and the loop, each named on its card
    css = next(p for p in put_in if p.name == "show.css").read_text()
    assert "img { image-orientation: none; }" in css
