"""``hoidata show``: every kind of directory becomes pages of cards (one per record shown), SFT boxes
are decoded from the text onto the model's view of the image, filters and limits read only what
they need, reruns reuse the site's images, and nothing on a page points outside the site's files."""

from __future__ import annotations

import json
import shutil
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from threading import Thread
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from light_cli import run_light
from show_data import SFT, showcase  # noqa: F401

from hoidata.errors import HoidataError
from hoidata.io import read_manifest, read_table
from hoidata.profiles import get_profile
from hoidata.show import ShowOptions, write_site
from hoidata.show.conversation import Rendered, View, render_messages
from hoidata.show.filters import matching_rows, parse_condition, resolve_path
from hoidata.show.serve import make_server

KINDS = {
    "hico-train": "canonical",
    "hico-test": "canonical",
    "boxes": "canonical",
    "boxes-q3": "canonical",
    **dict.fromkeys(SFT, "sft"),
    "cot": "rollouts",
    "cot-sft": "sft",
    "cot-dpo": "pairs",
    "preds": "predictions",
    "eval-hico": "report",
    "attention": "images",
}


class Cards(HTMLParser):
    """The cards of a page: sample id, frame size, and every box drawn (classes, data-box-*)."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, Any]] = []
        self.records: list[int] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key])  # type: ignore[arg-type]
        if "data-records" in a:
            self.records.append(int(a["data-records"] or 0))
        if tag == "article" and "card" in classes:
            self.cards.append({"id": a.get("data-sample-id"), "boxes": [], "frames": []})
        elif "frame" in classes and self.cards:
            self.cards[-1]["frames"].append((float(a["data-frame-w"]), float(a["data-frame-h"])))  # type: ignore[arg-type]
        elif "box" in classes and self.cards:
            xy = [float(a[f"data-box-{k}"]) for k in ("x1", "y1", "x2", "y2")]  # type: ignore[arg-type]
            self.cards[-1]["boxes"].append(
                {"classes": set(classes), "box": np.array(xy), "id": a.get("data-id")}
            )


def parse(path: Path) -> Cards:
    parser = Cards()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def pages(site: Path, slug: str, prefix: str = "page") -> list[Path]:
    return sorted((site / slug).glob(f"{prefix}-*.html"))


@pytest.fixture(scope="module")
def site(showcase: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("site") / "site"
    write_site(showcase, out, ShowOptions(page_size=7, progress=False))
    return out


def test_every_kind_is_recognised_and_every_record_is_one_card(showcase: Path, tmp_path: Path) -> None:  # noqa: F811
    result = write_site(showcase, tmp_path / "site", ShowOptions(page_size=7, progress=False))
    kinds = {e.name: e.kind for e, _ in result.entries}
    assert kinds == KINDS
    for entry, gallery in result.entries:
        assert not gallery.notes, (entry.name, gallery.notes)
        if entry.kind in ("report", "images"):
            continue
        rows = read_manifest(entry.path).counts.get("rows", read_manifest(entry.path).counts["out"])
        assert gallery.cards == rows, entry.name
        seen = [parse(p) for p in pages(tmp_path / "site", entry.slug)]
        assert len(seen) == gallery.pages == -(-rows // 7)
        assert [len(s.cards) for s in seen] == [s.records[0] for s in seen]
        assert sum(len(s.cards) for s in seen) == rows, entry.name
        assert all(c["frames"] for s in seen for c in s.cards), entry.name  # every card shows its image
    rejects = [parse(p) for p in pages(tmp_path / "site", "hico-train", "rejects")]
    assert (
        sum(len(r.cards) for r in rejects) == read_manifest(showcase / "hico-train").counts["rejected"] == 1
    )
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Rejects by reason" in index and "manifest" in index
    assert (tmp_path / "site" / "attention" / "pictures.html").is_file()
    pictures = (tmp_path / "site" / "attention" / "pictures.html").read_text()
    assert "sample-0.png" in pictures and "s0: where is the cup?" in pictures


def test_every_link_stays_on_disk_and_resolves(site: Path) -> None:
    for page in [site / "index.html", *site.glob("*/*.html")]:
        for url in parse(page).urls:
            assert "://" not in url and not url.startswith("//"), (page, url)
            if url.startswith("#"):
                continue
            assert (page.parent / url.split("#")[0]).resolve().exists(), (page, url)


@pytest.mark.parametrize("slug", list(SFT))
def test_sft_boxes_decode_onto_the_canonical_boxes_after_the_resize(
    showcase: Path,  # noqa: F811
    site: Path,
    slug: str,
) -> None:
    rows = {r["sample_id"]: r for r in read_table(showcase / slug).to_pylist()}
    checked = 0
    for page in pages(site, slug):
        for card in parse(page).cards:
            row = rows[card["id"]]
            assert card["frames"][0] == (row["resized_width"], row["resized_height"])  # the model's view
            scale = np.array([row["resized_width"] / row["width"], row["resized_height"] / row["height"]] * 2)
            decoded = [
                b["box"]
                for b in card["boxes"]
                if "decoded" in b["classes"] and not b["classes"] & {"call", "tool"}
            ]
            for pair in row["pairs"]:
                for key in ("person_bbox", "object_bbox"):
                    want = np.array(pair[key]) * scale
                    assert min(np.abs(d - want).max() for d in decoded) <= 1.0, (card["id"], key)
                    checked += 1
            if row["task"] == "referring":  # the question names the person, then the object
                np.testing.assert_allclose(
                    decoded[0], np.array(row["pairs"][0]["person_bbox"]) * scale, atol=1.0
                )
                np.testing.assert_allclose(
                    decoded[1], np.array(row["pairs"][0]["object_bbox"]) * scale, atol=1.0
                )
    assert checked >= 2 * len(rows)


def test_a_frame_bug_shows_as_a_misplaced_box() -> None:
    """Decoding a 0–1000 answer as if it were pixels of the resized image lands far from the object."""
    right, wrong = get_profile("qwen3-vl"), get_profile("qwen2.5-vl")
    message = [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": '{"person_bbox_2d": [500, 500, 750, 1000]}'}],
        }
    ]
    boxes = []
    for profile in (right, wrong):
        out = Rendered()
        render_messages(message, [], View.of(profile, 640, 480), out)
        boxes.append(out.boxes[0])
    assert 'data-box-x1="320"' in boxes[0] and 'data-box-y2="480"' in boxes[0]
    assert 'data-box-x1="320"' not in boxes[1]


def test_hostile_text_is_escaped() -> None:
    text = '<script>alert(1)</script><img src=x onerror="alert(2)"> [1, 2, 3, 4]'
    out = Rendered()
    render_messages(
        [{"role": "user", "content": [{"type": "text", "text": text}]}],
        [],
        View.of(get_profile("qwen2.5-vl"), 100, 100),
        out,
    )
    html = "".join(out.turns)
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert out.count == 1


def test_filters_read_list_fields_and_limits_cut(showcase: Path, tmp_path: Path) -> None:  # noqa: F811
    verbs = [{i["verb"] for i in r["interactions"]} for r in read_table(showcase / "hico-train").to_pylist()]
    verb = sorted(verbs[0])[0]
    result = write_site(
        showcase / "hico-train", tmp_path / "a", ShowOptions(filters=[f"verb={verb}"], progress=False)
    )
    assert result.cards == sum(verb in v for v in verbs) >= 1
    cot = read_table(showcase / "cot", ["status", "rewards"]).to_pylist()
    opts = ShowOptions(filters=["status=answered", "rewards.accuracy<1"], limit=100, progress=False)
    result = write_site(showcase / "cot", tmp_path / "b", opts)
    assert result.cards == sum(r["status"] == "answered" and r["rewards"]["accuracy"] < 1 for r in cot) >= 1
    assert write_site(showcase / "cot", tmp_path / "c", ShowOptions(limit=3, progress=False)).cards == 3
    with pytest.raises(HoidataError, match="no field"):
        write_site(showcase / "cot", tmp_path / "d", ShowOptions(filters=["colour=red"], progress=False))


def test_conditions_on_arrow_columns() -> None:
    table = pa.table({"x": [[{"v": "a"}, {"v": "b"}], [], [{"v": "b"}]], "n": [1.0, 2.0, 3.0]})
    cond = parse_condition("v=b")
    assert resolve_path(table.schema, cond.field) == ["x", "v"]
    assert matching_rows(table, [(["x", "v"], cond)]).tolist() == [True, False, True]
    assert parse_condition("n>=2").op == ">=" and parse_condition("n~2").op == "~"
    both = [(["x", "v"], cond), (["n"], parse_condition("n>1.5"))]
    assert matching_rows(table, both).tolist() == [False, False, True]


def test_rerun_reuses_images_and_drops_pages_of_a_longer_run(showcase: Path, tmp_path: Path) -> None:  # noqa: F811
    first = write_site(showcase / "cot", tmp_path / "s", ShowOptions(page_size=4, progress=False))
    assert first.thumbnails_made > 0 and not first.thumbnails_failed
    again = write_site(showcase / "cot", tmp_path / "s", ShowOptions(page_size=4, limit=5, progress=False))
    assert again.thumbnails_made == 0 and again.thumbnails_reused > 0
    assert len(pages(tmp_path / "s", "cot")) == 2


def test_extra_pictures_a_manifest_lists(showcase: Path, tmp_path: Path) -> None:  # noqa: F811
    copy = tmp_path / "with-maps"
    shutil.copytree(showcase / "hico-test", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    shutil.copy(showcase / "attention" / "maps" / "sample-0.png", copy / "map.png")
    manifest["extra"]["images"] = [{"path": "map.png", "title": "attention of sample 0"}]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = write_site(copy, tmp_path / "s", ShowOptions(progress=False))
    ((_, gallery),) = result.entries
    assert gallery.pictures and "attention of sample 0" in (tmp_path / "s" / gallery.pictures).read_text()


def test_report_page_charts_or_says_why_not(site: Path) -> None:
    html = (site / "eval-hico" / "report.html").read_text()
    assert "Worst classes" in html
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "charts need matplotlib" in html
        return
    for name in ("ap-groups", "worst-classes", "pr-curves"):
        assert (site / "eval-hico" / "charts" / f"{name}.png").is_file(), name


def test_cli_is_light_and_serves_only_on_loopback(showcase: Path, tmp_path: Path) -> None:  # noqa: F811
    r = run_light("show", str(showcase / "sft-cof"), "-o", str(tmp_path / "s"), "--limit", "2")
    assert r.returncode == 0, r.stderr
    assert "show: 2 records on 1 pages" in r.stdout and f"site: {tmp_path / 's' / 'index.html'}" in r.stdout
    r = run_light("show", str(tmp_path / "nothing-here"))
    assert r.returncode == 2 and "no such directory" in r.stderr
    server = make_server(tmp_path / "s", 0)
    assert server.server_address[0] == "127.0.0.1"
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/index.html") as response:
            assert response.status == 200 and b"hoidata show" in response.read()
    finally:
        server.shutdown()
        server.server_close()
