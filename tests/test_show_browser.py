"""``hoidata show`` sites in real headless Chromium (Debian's ``chromium``, driven by Playwright):
no console error, no request outside ``file://``, one card per record shown, every image loaded,
SFT boxes drawn where the canonical boxes fall on the model's view (within 1 px), highlighting on
hover, and screenshots that show something."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from show_data import SFT, showcase  # noqa: F401

from hoidata.io import read_table
from hoidata.show import ShowOptions, Site, write_site

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
CHROMIUM = next(
    (
        p
        for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
        if p and Path(p).exists()
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

MEASURE = """() => [...document.querySelectorAll('article.card')].map(card => {
  const frame = card.querySelector('.frame');
  if (!frame) return null;
  const f = frame.getBoundingClientRect();
  const fw = +frame.dataset.frameW, fh = +frame.dataset.frameH;
  const boxes = [...frame.querySelectorAll('.box.decoded')].filter(b => !b.matches('.call, .tool')).map(b => {
    const r = b.getBoundingClientRect();
    return {data: ['x1', 'y1', 'x2', 'y2'].map(k => +b.getAttribute('data-box-' + k)),
            drawn: [(r.left - f.left) * fw / f.width, (r.top - f.top) * fh / f.height,
                    (r.right - f.left) * fw / f.width, (r.bottom - f.top) * fh / f.height]};
  });
  return {id: card.dataset.sampleId, frame: [fw, fh], boxes};
})"""


@pytest.fixture(scope="module")
def written(showcase: Path, tmp_path_factory: pytest.TempPathFactory) -> Site:  # noqa: F811
    return write_site(
        showcase, tmp_path_factory.mktemp("browser") / "site", ShowOptions(page_size=6, progress=False)
    )


@pytest.fixture(scope="module")
def site(written: Site) -> Path:
    return written.index.parent


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


class Visit:
    """A page opened from disk, with what it logged and requested."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def close(self) -> None:
        self.page.close()


def test_every_page_opens_clean_with_one_card_per_record(written: Site, site: Path, browser: Any) -> None:
    pages = [site / "index.html", *sorted(site.glob("*/*.html"))]
    assert len(pages) > 12
    cards = 0
    for path in pages:
        visit = Visit(browser, path)
        assert visit.errors == [], (path, visit.errors)
        assert all(u.startswith("file://") for u in visit.requests), (path, visit.requests)
        shown = visit.page.eval_on_selector_all("article.card", "cards => cards.length")
        records = visit.page.eval_on_selector_all("[data-records]", "els => els.map(e => +e.dataset.records)")
        if path.name.startswith(("page-", "rejects-")):
            assert records == [shown], path
            cards += shown
        broken = visit.page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        assert broken == [], (path, broken)
        visit.close()
    assert cards == sum(g.cards + g.rejects for _, g in written.entries) > 50


@pytest.mark.parametrize("slug", list(SFT))
def test_sft_boxes_land_on_the_canonical_boxes_within_a_pixel(
    showcase: Path,  # noqa: F811
    site: Path,
    browser: Any,
    slug: str,
) -> None:
    rows = {r["sample_id"]: r for r in read_table(showcase / slug).to_pylist()}
    matched = 0
    for path in sorted((site / slug).glob("page-*.html")):
        visit = Visit(browser, path)
        for card in visit.page.evaluate(MEASURE):
            row = rows[card["id"]]
            assert card["frame"] == [row["resized_width"], row["resized_height"]]
            scale = np.array([row["resized_width"] / row["width"], row["resized_height"] / row["height"]] * 2)
            drawn = [np.array(b["drawn"]) for b in card["boxes"]]
            for b in card["boxes"]:  # the box is drawn where its data says
                np.testing.assert_allclose(b["drawn"], b["data"], atol=0.5)
            for pair in row["pairs"]:
                for key in ("person_bbox", "object_bbox"):
                    want = np.array(pair[key]) * scale
                    assert min(np.abs(d - want).max() for d in drawn) <= 1.0, (slug, card["id"], key)
                    matched += 1
        visit.close()
    assert matched >= 2 * len(rows)


def test_hovering_an_interaction_lights_up_its_boxes(site: Path, browser: Any) -> None:
    visit = Visit(browser, site / "boxes" / "page-0001.html")
    item = visit.page.locator("article.card ul.links li").first
    ids = item.get_attribute("data-hl").split()
    item.hover()
    card = visit.page.locator("article.card").first
    for box_id in ids:
        assert "hl" in card.locator(f'.box[data-id="{box_id}"]').get_attribute("class")
    union = card.locator(f'.box[data-id="{ids[-1]}"]')
    assert union.is_visible()  # union boxes are hidden until their interaction is pointed at
    visit.page.mouse.move(0, 0)
    assert not union.is_visible()
    visit.close()


@pytest.mark.parametrize(
    "page", ["index.html", "boxes/page-0001.html", "sft-cof/page-0001.html", "cot-dpo/page-0001.html"]
)
def test_screenshots_are_not_blank(site: Path, browser: Any, page: str) -> None:
    visit = Visit(browser, site / page)
    shot = np.asarray(Image.open(io.BytesIO(visit.page.screenshot())).convert("RGB")).astype(np.int64)
    visit.close()
    assert shot.std() > 20
    colours = (shot[..., 0] << 16) | (shot[..., 1] << 8) | shot[..., 2]
    assert len(np.unique(colours)) > 200
