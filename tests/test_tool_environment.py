"""The HOI tool environment: detections, spatial analysis, zoom and imagine, as TRL and our own
generation loop call them, with the model's arguments treated as hostile."""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hoidata.profiles import PROFILES, get_profile
from hoidata.sft.cof import TOOLS_JSON
from hoidata.tools import generate_schemas, names, rows, spatial
from hoidata.tools.detection import CallableDetector, Detection, OracleDetector, Scene
from hoidata.tools.environment import (
    TOOL_NAMES,
    HoiEnvironment,
    ToolCall,
    call_tool,
    contact_likelihood,
    is_tool_error,
    scene_of,
    start_on,
    tool_error,
    tool_schemas,
)
from hoidata.tools.generate_schemas import library_schemas, schemas_text
from hoidata.tools.imagine import MODES, ContextImagine
from hoidata.tools.schemas import SCHEMAS_FILE
from hoidata.tools.zoom import crop

W, H = 640, 480
PERSON_A = [40.25, 30.5, 250.75, 470.0]
PERSON_B = [330.0, 60.0, 520.5, 460.25]
CUP = [200.5, 150.25, 260.0, 210.75]
BIKE = [300.0, 250.0, 630.0, 470.0]
PAIRS = [
    {"person_bbox": PERSON_A, "object_bbox": CUP, "verb": "hold", "object": "cup"},
    {
        "person_bbox": PERSON_A,
        "object_bbox": CUP,
        "verb": "drink_with",
        "object": "cup",
    },  # exact duplicate boxes
    {"person_bbox": PERSON_B, "object_bbox": BIKE, "verb": "ride", "object": "bicycle"},
    {"person_bbox": PERSON_B, "object_bbox": None, "verb": "stand", "object": None},
    {"person_bbox": PERSON_A, "object_bbox": PERSON_B, "verb": "hug", "object": "person"},
]


def noise_image(width: int = W, height: int = H, seed: int = 0) -> Image.Image:
    """Random pixels, so that any misplaced crop shows."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def row(image: Any = None, **extra: Any) -> dict[str, Any]:
    """A dataset row as TRL hands it to ``reset``: every column, wanted or not."""
    base = {
        "prompt": [{"role": "user", "content": "What is going on?"}],
        "images": [noise_image() if image is None else image],
        "width": W,
        "height": H,
        "pairs": PAIRS,
        "sample_id": "s-1",
        "task": "hoi",
        "messages": None,
    }
    return base | extra


def started(profile: str = "qwen3-vl", image: Any = None, **kwargs: Any) -> HoiEnvironment:
    env = HoiEnvironment(profile, **kwargs)
    env.reset(**row(image))
    return env


def shown(env: HoiEnvironment) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    humans = json.loads(env.detect_humans())["humans"]
    objects = json.loads(env.detect_objects("all"))["objects"]
    return humans, objects


# ---- detections -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_oracle_boxes_round_trip_to_canonical_in_every_frame(name: str) -> None:
    profile = get_profile(name)
    env = started(name)
    humans, objects = shown(env)
    err = float(profile.quantization_error(W, H)) + 1e-9
    assert len(humans) == 2 and len(objects) == 2  # pairs deduplicated: 2 people, a cup, a bicycle
    expected = {"cup": CUP, "bicycle": BIKE}
    for entry in objects:
        back = profile.from_model([entry["bbox_2d"]], W, H)[0]
        assert np.abs(back - expected[entry["label"]]).max() <= err
        assert all(isinstance(v, int) for v in entry["bbox_2d"])
    people = sorted(profile.from_model([h["bbox_2d"] for h in humans], W, H).tolist())
    assert np.abs(np.array(people) - sorted([PERSON_A, PERSON_B])).max() <= err
    assert all(h["score"] == 1.0 for h in humans)


def test_pairs_are_deduplicated_exactly_and_instances_win() -> None:
    env = started()
    labels = sorted(d.label for d in env.detections)
    assert labels == ["bicycle", "cup", "person", "person"]
    near = [*CUP[:3], CUP[3] + 0.25]  # not a duplicate: one coordinate differs
    env.reset(**row(pairs=[*PAIRS, {"person_bbox": PERSON_A, "object_bbox": near, "object": "cup"}]))
    assert sorted(d.label for d in env.detections) == ["bicycle", "cup", "cup", "person", "person"]
    instances = [
        {"bbox": PERSON_A, "label": "person", "label_id": 0, "is_human": True},
        {"bbox": CUP, "label": "wine_glass", "label_id": 7, "is_human": False},
    ]
    env.reset(**row(instances=instances))
    assert [(d.label, d.is_human) for d in env.detections] == [("person", True), ("wine_glass", False)]
    found = json.loads(env.detect_objects("Wine Glasses"))
    assert [o["label"] for o in found["objects"]] == ["wine glass"]


def scene(sample_id: str, n: int = 40) -> Scene:
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 400, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 200, (n, 2))], 1)
    labels = ["person" if i % 3 == 0 else f"thing_{i % 4}" for i in range(n)]
    return Scene(sample_id, W, H, boxes, labels, np.array([lab == "person" for lab in labels]))


def as_tuples(dets: list[Detection]) -> list[tuple[Any, ...]]:
    return [(tuple(d.box.tolist()), d.label, d.is_human, d.score) for d in dets]


def test_oracle_noise_misses_and_false_positives_are_seeded_per_sample() -> None:
    noisy = OracleDetector(box_noise=0.1, miss_rate=0.3, false_positives=4.0, seed=3)
    a1, a2, b = noisy.detect(scene("a")), noisy.detect(scene("a")), noisy.detect(scene("b"))
    assert as_tuples(a1) == as_tuples(a2)
    assert as_tuples(a1) != as_tuples(b)
    assert as_tuples(OracleDetector(0.1, 0.3, 4.0, seed=4).detect(scene("a"))) != as_tuples(a1)
    truth = scene("a")
    for dets in (a1, b):
        boxes = np.stack([d.box for d in dets])
        assert (boxes[:, [0, 1]] >= 0).all() and (boxes[:, 2] <= W).all() and (boxes[:, 3] <= H).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    # true detections stay near a ground-truth box and score high; false positives score low
    gt = np.asarray(truth.boxes)
    true_like = [d for d in a1 if d.score >= 0.7]
    fps = [d for d in a1 if d.score < 0.7]
    assert all(0.05 <= d.score < 0.5 for d in fps)
    assert 0 < len(true_like) < len(gt)  # some missed
    for d in true_like:
        size = np.tile(gt[:, 2:] - gt[:, :2], 2)
        assert (np.abs(d.box - gt) / size).max(1).min() < 0.6
    missed = [1 - sum(d.score >= 0.7 for d in noisy.detect(scene(f"s{i}"))) / 40 for i in range(30)]
    assert 0.2 < np.mean(missed) < 0.4
    fp_counts = [sum(d.score < 0.7 for d in noisy.detect(scene(f"s{i}"))) for i in range(30)]
    assert 2.5 < np.mean(fp_counts) < 5.5
    exact = OracleDetector().detect(truth)
    assert np.array_equal(np.stack([d.box for d in exact]), np.clip(gt, 0, [W, H, W, H]))
    assert [d.label for d in exact] == truth.labels and all(d.score == 1.0 for d in exact)


def test_oracle_is_the_same_in_every_process() -> None:
    """Generation and RL run in different processes; Python's salted ``hash`` would differ there."""
    code = (
        "import numpy as np; from hoidata.tools.detection import OracleDetector, Scene;"
        "s = Scene('x', 640, 480, np.array([[10.0, 20, 300, 400], [50, 60, 70, 80]]), ['person', 'cup'],"
        " np.array([True, False]));"
        "print([(d.box.tolist(), d.label, d.score) for d in OracleDetector(0.1, 0.3, 2.0, seed=5).detect(s)])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and outs.pop().startswith("[(")


def test_environments_from_the_factory_agree_on_a_sample() -> None:
    make = HoiEnvironment.factory(detector=OracleDetector(box_noise=0.05, miss_rate=0.2, false_positives=1))
    first, second = make(), make()
    assert first is not second
    assert first.reset(**row()) is None
    second.reset(**row())
    assert first.detect_humans() == second.detect_humans()
    assert first.detect_objects("all") == second.detect_objects("all")
    second.reset(**row(sample_id="s-2"))
    assert first.detect_objects("all") != second.detect_objects("all")
    with pytest.raises(ValueError):
        HoiEnvironment.factory(max_detections=0)


def test_episodes_started_on_one_scene_answer_as_reset_ones_and_decode_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rollouts of a prompt share one scene (read from the row once); each episode keeps its
    own ids and calls, and the image is decoded once for all of them."""
    opened: list[bool] = []
    real = rows.open_image
    monkeypatch.setattr(
        rows, "open_image", lambda source, load=True: opened.append(load) or real(source, load)
    )
    the_row = row({"bytes": png(noise_image()), "path": None})
    noisy = OracleDetector(box_noise=0.05, miss_rate=0.2, false_positives=1)
    scene = scene_of(the_row)
    shared = [HoiEnvironment(detector=noisy), HoiEnvironment(detector=noisy)]
    for env in shared:
        start_on(env, scene, the_row)
    alone = HoiEnvironment(detector=noisy)
    alone.reset(**the_row)
    for env in shared:
        assert shown(env) == shown(alone)
        assert np.array_equal(
            np.asarray(env.zoom_in([100, 200, 300, 400])[0]["image"]),
            np.asarray(alone.zoom_in([100, 200, 300, 400])[0]["image"]),
        )
    shared[0].analyze_spatial(0, 2)
    assert len(shared[0].calls) == 4 and len(shared[1].calls) == 3  # calls are the episode's own
    assert opened == [True, True]  # once for the shared scene, once for the episode reset alone

    class ReadsMore(HoiEnvironment):  # a row read its own way is read so in the loops as in TRL
        def reset(self, **row: Any) -> None:
            super().reset(**row)
            self.note = row["task"]

    own, plain = ReadsMore(), HoiEnvironment()
    start_on(own, scene, the_row)
    plain.reset(**the_row)
    assert own.note == "hoi" and shown(own) == shown(plain)


def test_source_id_seeds_the_detector_so_every_task_of_an_image_agrees() -> None:
    noisy = OracleDetector(box_noise=0.1)
    a, b = HoiEnvironment(detector=noisy), HoiEnvironment(detector=noisy)
    a.reset(**row(sample_id="img-7/hoi", source_id="img-7"))
    b.reset(**row(sample_id="img-7/grounding", source_id="img-7"))
    assert a.detect_humans() == b.detect_humans()


def test_callable_detector_sees_the_image_and_answers_in_canonical_pixels() -> None:
    stored = noise_image(W // 2, H // 2)
    seen: list[tuple[int, int]] = []

    def fake(image: Image.Image) -> list[Detection]:
        seen.append(image.size)
        return [Detection(np.array([10.0, 20.0, 100.0, 200.0]), "person", True, 0.9)]

    env = HoiEnvironment(detector=CallableDetector(fake))
    env.reset(**row({"bytes": png(stored), "path": None}))
    assert seen == []  # nothing decoded or detected at reset
    (human,) = json.loads(env.detect_humans())["humans"]
    env.detect_humans()
    assert seen == [(W // 2, H // 2)]  # once per episode
    back = env.profile.from_model([human["bbox_2d"]], W, H)[0]
    assert np.abs(back - [20, 40, 200, 400]).max() <= float(env.profile.quantization_error(W, H))


def test_max_detections_keeps_the_best_scores() -> None:
    dets = [
        Detection(np.array([i, i, i + 10.0, i + 10.0]), "cup", False, s)
        for i, s in enumerate([0.2, 0.9, 0.5])
    ]
    env = HoiEnvironment(detector=CallableDetector(lambda image: dets), max_detections=2)
    env.reset(**row())
    found = json.loads(env.detect_objects("cups"))["objects"]
    assert [o["score"] for o in found] == [0.9, 0.5]


# ---- ids and spatial analysis -----------------------------------------------------------------------
def test_ids_are_episode_wide_stable_and_checked() -> None:
    env = started(max_calls=20)
    humans, objects = shown(env)
    assert json.loads(env.detect_humans())["humans"] == humans
    assert json.loads(env.detect_objects("all"))["objects"] == objects
    ids = [h["id"] for h in humans] + [o["id"] for o in objects]
    assert len(set(ids)) == len(ids)
    cup = next(o for o in objects if o["label"] == "cup")
    assert json.loads(env.detect_objects(" CUPS "))["objects"] == [cup]
    assert json.loads(env.detect_objects("Bicycle"))["objects"][0]["label"] == "bicycle"
    assert json.loads(env.detect_objects("people"))["objects"] == [
        {"id": h["id"], "label": "person", **{k: h[k] for k in ("bbox_2d", "score")}} for h in humans
    ]
    assert json.loads(env.detect_objects("giraffe")) == {"category": "giraffe", "objects": []}
    result = json.loads(env.analyze_spatial(humans[0]["id"], cup["id"]))
    assert result["human_id"] == humans[0]["id"] and result["object_id"] == cup["id"]
    # a person can be the object of an interaction (hug)
    assert not is_tool_error(env.analyze_spatial(humans[0]["id"], humans[1]["id"]))
    assert is_tool_error(env.analyze_spatial(cup["id"], humans[0]["id"]))  # an object is no human
    env.reset(**row())
    assert is_tool_error(env.analyze_spatial(humans[0]["id"], cup["id"]))  # ids are per episode
    assert env.calls[-1].error is not None and "unknown" in env.calls[-1].error


def test_ids_must_have_been_shown() -> None:
    env = started()
    humans = json.loads(env.detect_humans())["humans"]
    cup_id = next(d for d in range(len(env.detections)) if env.detections[d].label == "cup")
    assert is_tool_error(env.analyze_spatial(humans[0]["id"], cup_id))  # the cup was never detected
    json.loads(env.detect_objects("cup"))
    assert not is_tool_error(env.analyze_spatial(humans[0]["id"], cup_id))


def test_spatial_numbers_agree_with_relations() -> None:
    env = started(max_calls=20)
    humans, objects = shown(env)
    for h in humans:
        for o in objects:
            got = json.loads(env.analyze_spatial(str(h["id"]), float(o["id"])))
            person, obj = env.detections[h["id"]].box, env.detections[o["id"]].box
            r = spatial.relations(person, obj)
            assert got["relation"] == spatial.describe(person, obj)[0]
            assert got["direction"] == r["direction"][0]
            for key, name in [
                ("distance", "distance"),
                ("iou", "iou"),
                ("object_inside_person", "inside"),
                ("relative_size", "size_ratio"),
            ]:
                assert got[key] == pytest.approx(float(r[name][0]), abs=5e-4)
            assert got["contact"] == contact_likelihood(person, obj)[0]


def test_contact_likelihood_from_overlap_and_gap() -> None:
    person = np.array([[100, 100, 200, 300]] * 4, float)  # size sqrt(100*200) ≈ 141 px
    obj = np.array(
        [
            [150, 150, 250, 250],  # half inside: likely
            [199, 100, 400, 300],  # a sliver of overlap: possible
            [210, 100, 260, 150],  # 10 px gap (0.07 person sizes): possible
            [400, 100, 450, 150],  # far: unlikely
        ],
        float,
    )
    assert contact_likelihood(person, obj).tolist() == ["likely", "possible", "possible", "unlikely"]


# ---- zoom and imagine -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("stored_scale", [1.0, 0.5])
def test_zoom_is_pixel_identical_to_the_shared_crop(name: str, stored_scale: float) -> None:
    """The tool's crop equals chain-of-focus SFT's crop, also when the stored image is pre-resized."""
    full = noise_image()
    stored = full.resize((round(W * stored_scale), round(H * stored_scale)), Image.Resampling.BICUBIC)
    env = started(name, image={"bytes": png(stored), "path": None})
    profile = env.profile
    for canonical in (CUP, BIKE, [5.0, 5.0, 9.0, 9.0], [630.0, 470.0, 640.0, 480.0]):
        model = profile.to_model([canonical], W, H)[0]
        image, text = env.zoom_in(model.tolist())
        region = profile.from_model([model], W, H)[0]
        expected = crop(stored, region * stored_scale, min_size=profile.factor)
        assert image["type"] == "image" and text["type"] == "text"
        assert image["image"].size == expected.size
        assert np.array_equal(np.asarray(image["image"]), np.asarray(expected))
        assert text["text"] == f"Zoomed view of [{', '.join(map(str, model.tolist()))}]."
    assert all(c.ok for c in env.calls)


def test_zoom_accepts_json_text_and_clamps_to_the_image() -> None:
    env = started(max_calls=20)
    a, b = env.zoom_in("[100, 200, 300, 400]"), env.zoom_in([100.0, 200, 300, 400])
    assert np.array_equal(np.asarray(a[0]["image"]), np.asarray(b[0]["image"]))
    partly_outside = env.zoom_in([900, 900, 1500, 1200])
    assert partly_outside[1]["text"] == "Zoomed view of [900, 900, 1000, 1000]."
    assert partly_outside[0]["image"].size == (64, 48)


def test_rollouts_zooming_on_one_region_of_one_image_share_its_view() -> None:
    """The ``n`` rollouts of a prompt get one view object per region (cropped once, encoded once);
    another region, another image or another pixel budget is another view."""
    image, other = noise_image(), noise_image(seed=1)
    a, b, c = started(image=image), started(image=image), started(image=other)
    small = started(image=image, max_crop_pixels=50 * 50)
    view = a.zoom_in([100, 200, 300, 400])[0]["image"]
    assert b.zoom_in([100, 200, 300, 400])[0]["image"] is view
    assert b.zoom_in([100, 200, 300, 500])[0]["image"] is not view
    assert c.zoom_in([100, 200, 300, 400])[0]["image"] is not view
    assert small.zoom_in([100, 200, 300, 400])[0]["image"].size != view.size
    assert np.array_equal(np.asarray(view), np.asarray(started().zoom_in([100, 200, 300, 400])[0]["image"]))


def test_zoom_respects_the_pixel_budget() -> None:
    env = started(max_crop_pixels=100 * 100)
    image = env.zoom_in([0, 0, 1000, 1000])[0]["image"]
    assert image.width * image.height <= 100 * 100
    assert abs(image.width / image.height - W / H) < 0.05


def test_image_is_decoded_once_per_episode_and_never_at_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[bool] = []
    real = rows.open_image

    def counting(source: Any, load: bool = True) -> Image.Image:
        opened.append(load)
        return real(source, load)

    monkeypatch.setattr(rows, "open_image", counting)
    env = HoiEnvironment(max_calls=20)
    env.reset(**row({"bytes": png(noise_image()), "path": None}))
    assert opened == []
    env.detect_humans()
    assert opened == []  # the oracle needs no pixels
    env.zoom_in([0, 0, 500, 500])
    env.imagine([0, 0, 500, 500])
    env.zoom_in([500, 500, 1000, 1000])
    assert opened == [True]
    env.reset(**{k: v for k, v in row({"bytes": png(noise_image()), "path": None}).items() if k != "width"})
    assert opened == [True, False]  # no width: only the header is read


def test_an_unreadable_image_is_a_tool_error() -> None:
    env = started(image={"bytes": b"not an image", "path": None})
    assert json.loads(env.detect_humans())["humans"]
    result = env.zoom_in([0, 0, 100, 100])
    assert is_tool_error(result) and not env.calls[-1].ok


def test_context_imagine_sizes_and_mirroring() -> None:
    image = noise_image(1000, 1000)
    backend = ContextImagine(scale=2.0)
    box = np.array([100.0, 200.0, 300.0, 300.0])
    assert backend.imagine(image, box, "context").size == (400, 200)
    assert backend.imagine(image, box, "outpaint").size == (400, 200)
    corner = np.array([0.0, 0.0, 100.0, 50.0])
    assert backend.imagine(image, corner, "context").size == (150, 75)  # clamped at the border
    out = np.asarray(backend.imagine(image, corner, "outpaint"))
    assert out.shape == (100, 200, 3)
    pixels = np.asarray(image)
    assert np.array_equal(out[25:, 50:], pixels[:75, :150])  # the real part
    assert np.array_equal(out[25:, 49], pixels[:75, 0]) and np.array_equal(out[25:, 40], pixels[:75, 9])
    assert np.array_equal(out[24, 50:], pixels[0, :150])  # mirrored, edge pixel repeated
    with pytest.raises(ValueError):
        backend.imagine(image, box, "dream")


def test_imagine_tool_modes() -> None:
    env = HoiEnvironment(max_calls=20)
    env.reset(**row(noise_image(1000, 1000), width=1000, height=1000))
    for mode in MODES:
        image, text = env.imagine([100, 200, 300, 300], mode)
        assert image["image"].size == (400, 200)
        assert "[100, 200, 300, 300]" in text["text"]
    outpaint = env.imagine([0, 0, 100, 50], " Outpaint ")[0]["image"]
    context = env.imagine([0, 0, 100, 50], "context")[0]["image"]
    assert outpaint.size == (200, 100) and context.size == (150, 75)
    assert "generated" in env.imagine([0, 0, 100, 50])[1]["text"]


def test_a_failing_backend_is_a_tool_error() -> None:
    class Broken:
        def imagine(self, image: Image.Image, box: np.ndarray, mode: str) -> Image.Image:
            raise RuntimeError("service down")

    env = started(imagine_backend=Broken())
    result = env.imagine([0, 0, 100, 100])
    assert is_tool_error(result) and "service down" in json.loads(result)["error"]


# ---- hostile arguments ------------------------------------------------------------------------------
BAD_CALLS = [
    ("zoom_in", {"bbox_2d": "a cup"}),
    ("zoom_in", {"bbox_2d": "[1, 2, 3"}),
    ("zoom_in", {"bbox_2d": True}),
    ("zoom_in", {"bbox_2d": [True, 0, 10, 10]}),
    ("zoom_in", {"bbox_2d": [0, 0, math.nan, 10]}),
    ("zoom_in", {"bbox_2d": "[0, 0, NaN, 10]"}),
    ("zoom_in", {"bbox_2d": [0, 0, math.inf, 10]}),
    ("zoom_in", {"bbox_2d": [0, 0, 1e30, 10]}),
    ("zoom_in", {"bbox_2d": [0, 0, 10**400, 10]}),
    ("zoom_in", {"bbox_2d": [0, 0, 10, 10, 20]}),
    ("zoom_in", {"bbox_2d": [0, 0, 10]}),
    ("zoom_in", {"bbox_2d": [[0, 0], [10, 10]]}),
    ("zoom_in", {"bbox_2d": [[0, 0, 10, 10]]}),
    ("zoom_in", {"bbox_2d": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}}),
    ("zoom_in", {"bbox_2d": ["0", "0", "10", "10"]}),
    ("zoom_in", {"bbox_2d": None}),
    ("zoom_in", {"bbox_2d": [300, 300, 100, 400]}),  # inverted
    ("zoom_in", {"bbox_2d": [100, 100, 100, 400]}),  # empty
    ("zoom_in", {"bbox_2d": [1200, 1200, 1500, 1500]}),  # entirely outside
    ("zoom_in", {"bbox_2d": [-500, -500, -100, -100]}),
    ("zoom_in", {"bbox_2d": "[" + "1, " * 5000 + "1]"}),
    ("zoom_in", {"bbox_2d": "[" * 450 + "]" * 450}),
    ("imagine", {"bbox_2d": [0, 0, 100, 100], "mode": "dream"}),
    ("imagine", {"bbox_2d": [0, 0, 100, 100], "mode": 3}),
    ("imagine", {"bbox_2d": [0, 0, 100, 100], "mode": ["outpaint"]}),
    ("imagine", {"bbox_2d": [0, 0, math.inf, 100]}),
    ("detect_objects", {"category": "c" * 10_000}),
    ("detect_objects", {"category": 7}),
    ("detect_objects", {"category": ["cup"]}),
    ("detect_objects", {"category": None}),
    ("detect_objects", {"category": "   "}),
    ("analyze_spatial", {"human_id": 0, "object_id": 999}),
    ("analyze_spatial", {"human_id": -1, "object_id": 2}),
    ("analyze_spatial", {"human_id": True, "object_id": 2}),
    ("analyze_spatial", {"human_id": 0.5, "object_id": 2}),
    ("analyze_spatial", {"human_id": "zero", "object_id": 2}),
    ("analyze_spatial", {"human_id": "\u00b2", "object_id": 2}),  # str.isdigit() says yes, int() says no
    ("analyze_spatial", {"human_id": math.nan, "object_id": 2}),
    ("analyze_spatial", {"human_id": 1e30, "object_id": 2}),
    ("analyze_spatial", {"human_id": [0], "object_id": 2}),
    ("analyze_spatial", {"human_id": 0, "object_id": 0}),
]


@pytest.mark.parametrize(
    ("name", "arguments"), BAD_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_CALLS)]
)
def test_hostile_arguments_are_tool_errors(name: str, arguments: dict[str, Any]) -> None:
    env = started()
    shown(env)  # ids 0..3 are shown, so only the argument itself can be wrong
    before = len(env.calls)
    result = getattr(env, name)(**arguments)
    assert is_tool_error(result), result
    assert isinstance(result, str) and "\n" not in result and len(result) <= 400
    assert isinstance(json.loads(result)["error"], str)
    assert "failed:" not in result  # rejected by validation, not by the catch-all
    assert len(env.calls) == before + 1 and not env.calls[-1].ok and env.calls[-1].error
    assert is_tool_error(call_tool(env, name, json.dumps(arguments) if _json_safe(arguments) else arguments))


def _json_safe(arguments: dict[str, Any]) -> bool:
    try:
        json.dumps(arguments, allow_nan=False)
    except (ValueError, OverflowError):
        return False
    return True


def test_a_sample_without_annotations() -> None:
    env = HoiEnvironment()
    env.reset(images=[noise_image()], width=W, height=H, pairs=[])
    assert json.loads(env.detect_humans()) == {"humans": []}
    assert json.loads(env.detect_objects("all")) == {"category": "all", "objects": []}
    assert not is_tool_error(env.zoom_in([0, 0, 500, 500]))


def test_calls_before_reset_are_tool_errors() -> None:
    env = HoiEnvironment()
    assert env.detections == []
    for name, arguments in [("detect_humans", {}), ("zoom_in", {"bbox_2d": [0, 0, 10, 10]})]:
        assert is_tool_error(getattr(env, name)(**arguments))


def test_call_budget() -> None:
    env = started(max_calls=3)
    env.detect_humans()
    env.zoom_in("bad")
    env.detect_objects("cup")
    for result in (env.detect_humans(), env.zoom_in([0, 0, 100, 100]), call_tool(env, "detect_humans", {})):
        assert is_tool_error(result) and "budget" in json.loads(result)["error"]
    assert [c.ok for c in env.calls] == [True, False, True, False, False, False]
    env.reset(**row())
    assert env.calls == [] and not is_tool_error(env.detect_humans())


# ---- TRL and our own loop ---------------------------------------------------------------------------
def test_public_functions_are_exactly_reset_and_the_tools() -> None:
    """TRL exposes every public function of the environment's class as a tool."""
    members = inspect.getmembers(HoiEnvironment, predicate=inspect.isfunction)
    tools = [n for n, _ in members if n not in ("reset", "get_reward") and not n.startswith("_")]
    assert tools == list(TOOL_NAMES)
    assert {n for n, _ in members if not n.startswith("_")} == {*TOOL_NAMES, "reset"}


def test_call_tool_dispatch() -> None:
    env = started(max_calls=50)
    assert call_tool(env, "detect_humans", None) == call_tool(env, "detect_humans", "") == env.detect_humans()
    assert call_tool(env, "detect_objects", '{"category": "cup"}') == env.detect_objects("cup")
    zoom = call_tool(env, "zoom_in", {"bbox_2d": [0, 0, 10, 10]})
    assert isinstance(zoom, list) and zoom[0]["type"] == "image"
    bad = [
        ("zoom", {}),
        ("reset", {}),
        ("_call", {}),
        (None, {}),
        ("zoom_in", "not json"),
        ("zoom_in", "[1, 2, 3, 4]"),
        ("zoom_in", ["bbox_2d"]),
        ("zoom_in", {"bbox": [0, 0, 10, 10]}),
        ("zoom_in", {}),
        ("zoom_in", {"bbox_2d": [0, 0, 10, 10], "label": "cup"}),
        ("detect_humans", {"category": "person"}),
        ("analyze_spatial", {"human_id": 0}),
        ("detect_objects", "x" * 5000),
    ]
    before = len(env.calls)
    for name, arguments in bad:
        result = call_tool(env, name, arguments)  # type: ignore[arg-type]
        assert is_tool_error(result), (name, arguments, result)
    assert len(env.calls) == before + len(bad)
    assert all(isinstance(c, ToolCall) and not c.ok for c in env.calls[before:])
    assert env.calls[before].name == "zoom"


def test_tool_error_text() -> None:
    text = tool_error("line one\nline two " + "x" * 1000)
    assert "\n" not in text and json.loads(text)["error"].startswith("line one\nline two")
    assert is_tool_error(text) and is_tool_error(str({"error": "Tool x not found."}))
    assert is_tool_error({"error": "boom"})
    env = started()
    assert not is_tool_error(env.detect_humans()) and not is_tool_error(env.zoom_in([0, 0, 10, 10]))


def test_schemas_equal_transformers_get_json_schema() -> None:
    from transformers.utils import get_json_schema

    env = HoiEnvironment()
    ours = tool_schemas()
    assert [s["function"]["name"] for s in ours] == list(TOOL_NAMES)
    for schema in ours:
        theirs = get_json_schema(getattr(env, schema["function"]["name"]))
        assert json.dumps(schema) == json.dumps(theirs)  # key order too: it is the rendered prompt
    shipped = resources.files("hoidata.tools").joinpath(SCHEMAS_FILE).read_text(encoding="utf-8")
    assert shipped == schemas_text(library_schemas())  # `python -m hoidata.tools.generate_schemas --write`
    assert generate_schemas.main([]) == 0
    assert json.loads(TOOLS_JSON) == ours  # chain-of-focus SFT data offers the same tools as GRPO
    imagine = next(s for s in ours if s["function"]["name"] == "imagine")["function"]
    assert imagine["parameters"]["properties"]["mode"]["enum"] == list(MODES)


def test_tool_schemas_need_neither_transformers_nor_torch() -> None:
    code = (
        "import sys; from hoidata.tools.environment import tool_schemas; tool_schemas();"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tool_names_import_nothing() -> None:
    code = "import sys; before = set(sys.modules); import hoidata.tools.names; print(sorted(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['hoidata', 'hoidata.tools', 'hoidata.tools.names']"
    assert names.TOOL_NAMES is TOOL_NAMES


def test_tool_schemas_select_and_copy() -> None:
    assert [s["function"]["name"] for s in tool_schemas(["zoom_in", "imagine"])] == ["imagine", "zoom_in"]
    first = tool_schemas()
    first[0]["function"]["name"] = "changed"
    assert tool_schemas()[0]["function"]["name"] == TOOL_NAMES[0]  # each call is a fresh copy


def test_sft_tool_list_renders_the_same_prompt_as_trl() -> None:
    """SFT rows carry the schemas as JSON; GRPO passes the bound methods: Qwen3-VL's template must
    render both to the same system prompt."""
    import trl
    from transformers.utils.chat_template_utils import render_jinja_template

    template = (Path(trl.__file__).parent / "chat_templates" / "qwen3_vl.jinja").read_text()
    env = HoiEnvironment()
    methods = [
        getattr(env, n)
        for n, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
        if n not in ("reset", "get_reward") and not n.startswith("_")
    ]
    chat = [[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]]
    from_trl = render_jinja_template(chat, tools=methods, chat_template=template, add_generation_prompt=True)
    from_sft = render_jinja_template(
        chat, tools=json.loads(json.dumps(tool_schemas())), chat_template=template, add_generation_prompt=True
    )
    assert from_trl == from_sft
    assert '"name": "imagine"' in from_trl[0][0]


def test_an_environment_offering_some_tools_lists_only_those_to_trl() -> None:
    zoom_only = HoiEnvironment.offering(["zoom_in"])
    assert HoiEnvironment.offering(list(TOOL_NAMES)) is HoiEnvironment
    assert HoiEnvironment.offering(["zoom_in"]) is zoom_only  # one class per set
    listed = [  # what TRL's GRPOTrainer does with an environment_factory
        name
        for name, _ in inspect.getmembers(zoom_only, predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]
    assert listed == ["zoom_in"]
    env = HoiEnvironment.factory(["zoom_in"], profile="qwen2.5-vl")()
    assert isinstance(env, HoiEnvironment)
    env.reset(images=[Image.new("RGB", (64, 48))], width=64, height=48, sample_id="s")
    assert "unknown tool; the tools are zoom_in" in call_tool(env, "detect_humans", {})
    assert not is_tool_error(call_tool(env, "zoom_in", {"bbox_2d": [0, 0, 40, 40]}))
    with pytest.raises(ValueError, match="tools must be some of"):
        HoiEnvironment.offering(["teleport"])


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_zoom_region_is_the_profiles_array_conversion_exactly(name: str) -> None:
    """The zoom's region is float arithmetic on one box; it must equal, bit for bit, the profile's
    vectorised conversions: clamping to the model frame, then back to canonical pixels."""
    profile = get_profile(name)
    rng = np.random.default_rng(11)
    env = HoiEnvironment(profile)
    for width, height in [(640, 480), (333, 517), (1920, 1080), (57, 900)]:
        env.reset(width=width, height=height, pairs=[], sample_id="s")
        frame = profile.to_model([[0, 0, width, height]], width, height)[0]
        for _ in range(200):
            x, y = rng.uniform(-0.2, 1.1, 2) * frame[2:]
            box = [
                float(x),
                float(y),
                float(x + rng.uniform(1, 0.6 * frame[2])),
                float(y + rng.uniform(1, 900)),
            ]
            clamped = np.clip(box, frame[[0, 1, 0, 1]], frame[[2, 3, 2, 3]])
            if clamped[2] <= clamped[0] or clamped[3] <= clamped[1]:
                continue
            model, canonical = env._region(box)
            assert list(model) == clamped.tolist()
            assert list(canonical) == profile.from_model(clamped[None], width, height)[0].tolist()
