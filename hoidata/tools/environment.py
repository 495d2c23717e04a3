"""The HOI tool environment, one class for both CoT generation (our own multi-turn loop, through
:func:`call_tool`) and GRPO (TRL's ``environment_factory``), so a tool answers the same in both.

TRL exposes every public function of the class as a tool, builds its schema from the type hints and
Google-style docstring, and calls ``reset(**row)`` with every dataset column. Hence: the public
functions are exactly ``reset`` and the five tools, the tools' docstrings are prompt text, and every
argument is untrusted model output that is answered with a one-line tool error, never an exception.

Boxes the model reads and writes are in the profile's frame; the environment keeps canonical pixels.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from PIL import Image

from hoidata.profiles.profile import Profile, get_profile
from hoidata.profiles.text import display_name
from hoidata.tools import rows, spatial
from hoidata.tools.arguments import (
    ToolError,
    call_arguments,
    is_tool_error,
    parse_box,
    parse_category,
    parse_id,
    tool_error,
)
from hoidata.tools.detection import Detection, Detector, OracleDetector, Scene
from hoidata.tools.imagine import MODES, ContextImagine, ImagineBackend, imagine_result_text
from hoidata.tools.imagine_cache import ImagineCache, open_cache
from hoidata.tools.names import TOOL_NAMES
from hoidata.tools.schemas import tool_schemas
from hoidata.tools.spatial import contact_likelihood
from hoidata.tools.zoom import crop_window, zoom_result_text

# the names other modules import from here; the argument checks, names, schemas and geometry live apart
__all__ = [
    "ALL_OBJECTS",
    "TOOL_NAMES",
    "HoiEnvironment",
    "ToolCall",
    "call_tool",
    "contact_likelihood",
    "imagine_result_text",
    "is_tool_error",
    "tool_error",
    "tool_schemas",
]

ALL_OBJECTS = frozenset({"all", "any", "objects", "object", "all_objects", "everything"})
_ALIASES = {"people": "person", "human": "person", "humans": "person"}

T = TypeVar("T")
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ToolCall:
    """One call of an episode, as logged (rewards and filters read ``ok`` and ``error``)."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    error: str | None = None


class HoiEnvironment:
    """Tools over one sample at a time: detect people and objects, relate them, zoom in, imagine.

    Detections come from ``detector`` (ground truth by default) and get episode-wide ids, humans first,
    then by score; a tool accepts only ids it has shown the model. ``max_calls`` bounds an episode.
    """

    offered: ClassVar[tuple[str, ...]] = TOOL_NAMES  # the tools this class lists (see ``offering``)

    def __init__(
        self,
        profile: Profile | str = "qwen3-vl",
        detector: Detector | None = None,
        imagine_backend: ImagineBackend | None = None,
        *,
        imagine_cache: ImagineCache | str | None = None,
        min_crop: int | None = None,
        max_calls: int = 8,
        max_detections: int = 50,
        max_crop_pixels: int | None = None,
    ) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.detector: Detector = detector if detector is not None else OracleDetector()
        self.imagine_backend: ImagineBackend = (
            imagine_backend if imagine_backend is not None else ContextImagine()
        )
        # views made ahead of time (``hoidata imagine``), tried before the live backend
        self.imagine_cache = open_cache(imagine_cache) if isinstance(imagine_cache, str) else imagine_cache
        # the profile's factor by default: the minimum chain-of-focus SFT crops use, so both crop alike
        self.min_crop = self.profile.factor if min_crop is None else int(min_crop)
        self.max_calls = int(max_calls)
        self.max_detections = int(max_detections)
        self.max_crop_pixels = int(self.profile.max_pixels if max_crop_pixels is None else max_crop_pixels)
        if self.min_crop < 1 or self.max_calls < 0 or self.max_detections < 1 or self.max_crop_pixels < 1:
            raise ValueError("min_crop, max_detections and max_crop_pixels must be positive, max_calls >= 0")
        self.calls: list[ToolCall] = []
        self._scene: Scene | None = None
        self._detections: list[Detection] | None = None
        self._model_boxes = np.zeros((0, 4), np.int64)
        self._shown: set[int] = set()

    @classmethod
    def factory(cls, tools: Sequence[str] | None = None, **kwargs: Any) -> Callable[[], HoiEnvironment]:
        """A zero-argument constructor for TRL's ``environment_factory`` (one instance per rollout),
        offering ``tools`` only when given (see :meth:`offering`)."""
        kind = cls if tools is None else cls.offering(tools)
        kind(**kwargs)  # bad settings fail here, not inside the trainer
        return functools.partial(kind, **kwargs)

    @classmethod
    def offering(cls, tools: Sequence[str]) -> type[HoiEnvironment]:
        """This environment with ``tools`` only. The others are hidden on the class, which is where
        TRL's ``environment_factory`` lists tools from, and a call to one is an unknown tool."""
        unknown = sorted(set(tools) - set(cls.offered))
        if unknown or not tools:
            raise ValueError(f"tools must be some of {', '.join(cls.offered)}, got {list(tools)}")
        return _offering(cls, tuple(name for name in cls.offered if name in tools))

    @property
    def detections(self) -> list[Detection]:
        """This episode's detections, indexed by id (runs the detector on first use)."""
        return self._all_detections()[0] if self._scene is not None else []

    # ---- episode ----------------------------------------------------------------------------------
    def reset(self, **row: Any) -> None:
        """Start an episode on a dataset row; cheap: the image is decoded on first need only.

        Reads ``images`` (first item) or ``image``, ``width``/``height`` (the canonical frame),
        ``instances`` or else ``pairs`` (the oracle's ground truth), and ``source_id`` or ``sample_id``
        (the detector's seed: the source record, so every task built from one image sees the same
        detections). Other columns are ignored.
        """
        self._start(scene_of(row))

    def _start(self, scene: Scene) -> None:
        self._scene = scene
        self.calls = []
        self._detections = None
        self._model_boxes = np.zeros((0, 4), np.int64)
        self._shown = set()

    # ---- tools (public: TRL turns each into a tool; the docstrings are what the model reads) ------
    def detect_humans(self) -> str:
        """Detect the people in the image, each with an id, a box and a score. Pass the ids to analyze_spatial."""
        return self._call("detect_humans", {}, self._detect_humans)

    def detect_objects(self, category: str) -> str:
        """Detect the objects of one category in the image, each with an id, a box and a score.

        Args:
            category: The object category, e.g. "cup" or "sports ball"; "all" lists every object.
        """
        return self._call("detect_objects", {"category": category}, lambda: self._detect_objects(category))

    def analyze_spatial(self, human_id: int, object_id: int) -> str:
        """Measure where a detected object is relative to a detected person, and how likely they touch.

        Args:
            human_id: The id of a person, from detect_humans.
            object_id: The id of an object (or of another person), from detect_objects.
        """
        arguments = {"human_id": human_id, "object_id": object_id}
        return self._call("analyze_spatial", arguments, lambda: self._analyze(human_id, object_id))

    def zoom_in(self, bbox_2d: list[float]) -> list[dict] | str:
        """Zoom in on a region of the image to see it in more detail.

        Args:
            bbox_2d: The region [x1, y1, x2, y2], in the same coordinates as boxes in answers.
        """
        return self._call("zoom_in", {"bbox_2d": bbox_2d}, lambda: self._zoom(bbox_2d))

    def imagine(self, bbox_2d: list[float], mode: str = "outpaint") -> list[dict] | str:
        """See a wider view around a region: its surroundings, or beyond the image border by outpainting.

        Args:
            bbox_2d: The region [x1, y1, x2, y2], in the same coordinates as boxes in answers.
            mode: "outpaint" extends the view beyond the image border (generated, not real pixels),
                "context" shows the surroundings inside the image (choices: ["outpaint", "context"])
        """
        arguments = {"bbox_2d": bbox_2d, "mode": mode}
        return self._call("imagine", arguments, lambda: self._imagine(bbox_2d, mode))

    # ---- implementation ---------------------------------------------------------------------------
    def _call(self, name: str, arguments: dict[str, Any], run: Callable[[], T]) -> T | str:
        """Run one tool call within the budget, log it, and turn every failure into a tool error."""
        if len(self.calls) >= self.max_calls:
            return self._fail(
                name, arguments, f"the budget of {self.max_calls} tool calls is spent; answer now"
            )
        try:
            result = run()
        except ToolError as e:
            return self._fail(name, arguments, str(e))
        except Exception as e:  # a detector, image or backend failure must not end the rollout
            return self._fail(name, arguments, f"{name} failed: {type(e).__name__}: {e}")
        self.calls.append(ToolCall(name, arguments, True))
        return result

    def _fail(self, name: str, arguments: dict[str, Any], message: str) -> str:
        self.calls.append(ToolCall(name, arguments, False, message))
        return tool_error(message)

    def _require_scene(self) -> Scene:
        if self._scene is None:
            raise ToolError("no image: the environment has not been reset to a sample")
        return self._scene

    def _all_detections(self) -> tuple[list[Detection], np.ndarray]:
        """The detector's answer for this episode, computed once: humans first, then by score."""
        if self._detections is None:
            scene = self._require_scene()
            found = list(self.detector.detect(scene))
            human = np.array([d.is_human for d in found], bool)
            scores = np.array([d.score for d in found], np.float64)
            order = np.lexsort((-scores, ~human))
            self._detections = [found[i] for i in order]
            boxes = np.stack([d.box for d in self._detections]) if found else np.zeros((0, 4))
            self._model_boxes = self.profile.to_model(boxes, scene.width, scene.height)
        return self._detections, self._model_boxes

    def _listing(self, mask: np.ndarray, with_label: bool) -> list[dict[str, Any]]:
        """The selected detections as the model sees them, best first, at most ``max_detections``."""
        dets, model = self._all_detections()
        idx = np.flatnonzero(mask)
        scores = np.array([dets[i].score for i in idx], np.float64)
        idx = idx[np.argsort(-scores, kind="stable")][: self.max_detections]
        self._shown.update(int(i) for i in idx)
        out = []
        for i in idx:
            entry: dict[str, Any] = {"id": int(i)}
            if with_label:
                entry["label"] = display_name(dets[i].label)
            entry["bbox_2d"] = model[i].tolist()
            entry["score"] = round(float(dets[i].score), 2)
            out.append(entry)
        return out

    def _detect_humans(self) -> str:
        dets, _ = self._all_detections()
        mask = np.array([d.is_human for d in dets], bool)
        return json.dumps({"humans": self._listing(mask, with_label=False)})

    def _detect_objects(self, category: Any) -> str:
        query = parse_category(category)
        dets, _ = self._all_detections()
        if query in ALL_OBJECTS:
            mask = np.array([not d.is_human for d in dets], bool)
        else:
            names = {query, query.removesuffix("s"), query.removesuffix("es"), _ALIASES.get(query, query)}
            mask = np.isin(np.array([d.label for d in dets], dtype=object), list(names))
        return json.dumps({"category": display_name(query), "objects": self._listing(mask, with_label=True)})

    def _analyze(self, human_id: Any, object_id: Any) -> str:
        h, o = parse_id(human_id, "human_id"), parse_id(object_id, "object_id")
        dets, _ = self._all_detections()
        for name, i in (("human_id", h), ("object_id", o)):
            if i not in self._shown:
                raise ToolError(f"unknown {name} {i}: use an id that detect_humans or detect_objects gave")
        if not dets[h].is_human:
            raise ToolError(f"id {h} is not a person; human_id must come from detect_humans")
        if h == o:
            raise ToolError("human_id and object_id are the same detection")
        person, obj = dets[h].box, dets[o].box
        r = spatial.relations(person, obj)
        return json.dumps(
            {
                "human_id": h,
                "object_id": o,
                "relation": str(spatial.describe(person, obj)[0]),
                "direction": str(r["direction"][0]),
                "distance": round(float(r["distance"][0]), 3),
                "iou": round(float(r["iou"][0]), 3),
                "object_inside_person": round(float(r["inside"][0]), 3),
                "relative_size": round(float(r["size_ratio"][0]), 3),
                "contact": str(contact_likelihood(person, obj)[0]),
            }
        )

    def _region(self, bbox_2d: Any) -> tuple[Box, Box]:
        """A model-frame box argument → (the box clamped to the frame, its canonical pixels).

        One box per call, so plain float arithmetic: the same operations as the profile's array
        conversions (:func:`frame_scales`), a tenth of their cost."""
        scene = self._require_scene()
        x1, y1, x2, y2 = parse_box(bbox_2d)
        fw, fh, sx, sy = frame_scales(self.profile, scene.width, scene.height)
        x1, x2 = min(max(x1, 0.0), fw), min(max(x2, 0.0), fw)
        y1, y2 = min(max(y1, 0.0), fh), min(max(y2, 0.0), fh)
        if x2 <= x1 or y2 <= y1:
            raise ToolError("bbox_2d lies outside the image")
        return (x1, y1, x2, y2), (x1 * sx, y1 * sy, x2 * sx, y2 * sy)

    def _image_and_box(self, canonical: Box) -> tuple[Image.Image, Box]:
        """The decoded image and ``canonical`` in its pixels (a stored image may be pre-resized)."""
        scene = self._require_scene()
        image = scene.image()
        if image.size == (scene.width, scene.height):
            return image, canonical
        fx, fy = image.width / scene.width, image.height / scene.height
        x1, y1, x2, y2 = canonical
        return image, (x1 * fx, y1 * fy, x2 * fx, y2 * fy)

    def _fit(self, image: Image.Image) -> Image.Image:
        """``image`` downscaled to at most ``max_crop_pixels`` (a tool image costs visual tokens)."""
        area = image.width * image.height
        if area <= self.max_crop_pixels:
            return image
        f = math.sqrt(self.max_crop_pixels / area)
        size = (max(1, math.floor(image.width * f)), max(1, math.floor(image.height * f)))
        return image.resize(size, Image.Resampling.BICUBIC)

    def _zoom(self, bbox_2d: Any) -> list[dict[str, Any]]:
        model, canonical = self._region(bbox_2d)
        image, box = self._image_and_box(canonical)
        window = crop_window(box, image.width, image.height, self.min_crop)
        view = _VIEWS.get(image, (window, self.max_crop_pixels), lambda: self._fit(image.crop(window)))
        return [{"type": "image", "image": view}, {"type": "text", "text": zoom_result_text(model)}]

    def _imagine(self, bbox_2d: Any, mode: Any) -> list[dict[str, Any]]:
        if not isinstance(mode, str) or mode.strip().lower() not in MODES:
            raise ToolError(f"mode must be one of {', '.join(MODES)}")
        mode = mode.strip().lower()
        model, canonical = self._region(bbox_2d)
        image, box = self._image_and_box(canonical)
        cached = (
            self.imagine_cache.lookup(self._scene.sample_id, np.array(canonical), mode)
            if self.imagine_cache
            else None
        )
        view = cached if cached is not None else self.imagine_backend.imagine(image, np.array(box), mode)
        if not isinstance(view, Image.Image):
            raise ToolError("the imagination backend returned no image")
        return [
            {"type": "image", "image": self._fit(view)},
            {"type": "text", "text": imagine_result_text(np.rint(np.array(model)), mode)},
        ]


@functools.lru_cache(maxsize=1024)
def frame_scales(profile: Profile, width: int, height: int) -> tuple[float, float, float, float]:
    """For images of this size: the model frame's width and height, and the factors from model x
    and y to canonical pixels, taken from the profile's own conversions so that scalar arithmetic
    with them gives exactly what :meth:`Profile.from_model` gives."""
    frame = profile.to_model([[0, 0, width, height]], width, height)[0]
    sx, sy = profile.from_model([[1.0, 1.0, 1.0, 1.0]], width, height)[0, :2]
    return float(frame[2]), float(frame[3]), float(sx), float(sy)


class _SharedViews:
    """Zoomed views of live images, by image and window: the rollouts that zoom on the same region
    of the same decoded image (the ``n`` rollouts of a prompt often do, and the prompts of one
    scene share its image) get one view object, cropped once and, in generation, PNG-encoded once.
    Views are never modified, so sharing one is safe. Entries go with their image."""

    def __init__(self) -> None:
        self._views: dict[int, dict[Any, Image.Image]] = {}
        self._lock = threading.Lock()

    def get(self, image: Image.Image, key: Any, make: Callable[[], Image.Image]) -> Image.Image:
        with self._lock:
            views = self._views.get(id(image))
            view = None if views is None else views.get(key)
        if view is not None:
            return view
        view = make()  # outside the lock: two threads may both crop, and the first one kept wins
        with self._lock:
            views = self._views.get(id(image))
            if views is None:
                views = self._views[id(image)] = {}
                weakref.finalize(image, self._views.pop, id(image), None)
            return views.setdefault(key, view)


_VIEWS = _SharedViews()


# ---- our own generation loop ------------------------------------------------------------------------
def call_tool(
    env: HoiEnvironment, name: str, arguments: dict[str, Any] | str | None = None
) -> str | list[dict[str, Any]]:
    """Run a model's tool call (``arguments`` as a dict or JSON text) as TRL would; never raises.
    A tool the environment does not offer is an unknown tool."""
    logged = arguments if isinstance(arguments, dict) else {"arguments": arguments}
    label = name if isinstance(name, str) else repr(name)
    offered = type(env).offered
    try:
        if not isinstance(name, str) or name not in TOOL_NAMES or name not in offered:
            raise ToolError(f"unknown tool; the tools are {', '.join(offered)}")
        kwargs = call_arguments(name, arguments, getattr(HoiEnvironment, name))
    except ToolError as e:
        return env._fail(label[:64], logged, str(e))
    return getattr(env, name)(**kwargs)


# ---- tool subsets -----------------------------------------------------------------------------------
@functools.cache
def _offering(base: type[HoiEnvironment], tools: tuple[str, ...]) -> type[HoiEnvironment]:
    if tools == base.offered:
        return base
    hidden: dict[str, Any] = {name: None for name in TOOL_NAMES if name not in tools}
    label = "".join(name.title().replace("_", "") for name in tools)
    return type(
        f"{base.__name__}With{label}", (base,), {**hidden, "offered": tools, "__module__": base.__module__}
    )


def scene_of(row: dict[str, Any]) -> Scene:
    """What :meth:`HoiEnvironment.reset` reads from a row, as a scene several episodes may share
    (the rollouts of one prompt: its ground truth is read, and its image decoded, once for all)."""
    images = row.get("images")
    source = images[0] if images is not None and len(images) else row.get("image")
    width, height = row.get("width"), row.get("height")
    if width is None or height is None:
        if source is None:
            raise ValueError("a row needs width and height, or an image")
        width, height = rows.image_size(source)
    boxes, labels, human = rows.ground_truth(row.get("instances"), row.get("pairs"))
    sample_id = str(row.get("source_id") or row.get("sample_id") or "")
    loader = None if source is None else functools.partial(rows.open_image, source)
    return Scene(sample_id, int(width), int(height), boxes, labels, human, loader)


def start_on(env: HoiEnvironment, scene: Scene, row: dict[str, Any]) -> None:
    """``env.reset(**row)`` with the row read already, into ``scene`` by :func:`scene_of` (not a
    method: TRL offers an environment's public methods as tools). An environment whose class reads
    the row its own way (overrides ``reset``) is reset with it, as TRL would."""
    if type(env).reset is HoiEnvironment.reset:
        env._start(scene)
    else:
        env.reset(**row)
