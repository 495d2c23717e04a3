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
import inspect
import io
import json
import math
import re
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np
from PIL import Image

from hoidata.profiles.profile import Profile, display_name, get_profile, taxonomy_name
from hoidata.tools import spatial
from hoidata.tools.detection import Detection, Detector, OracleDetector, Scene
from hoidata.tools.imagine import MODES, ContextImagine, ImagineBackend
from hoidata.tools.zoom import crop, zoom_result_text

# In TRL's order (``inspect.getmembers`` sorts by name), so the tool list in SFT data renders the same
# prompt text as the list TRL builds during GRPO.
TOOL_NAMES = ("analyze_spatial", "detect_humans", "detect_objects", "imagine", "zoom_in")
ALL_OBJECTS = frozenset({"all", "any", "objects", "object", "all_objects", "everything"})
_ALIASES = {"people": "person", "human": "person", "humans": "person"}
MAX_COORDINATE = 1e5  # far beyond any frame (0-1000, or resized pixels); rejects 1e30 and friends
MAX_CATEGORY_CHARS = 64
MAX_ARGUMENT_CHARS = 1000  # an argument given as JSON text
MAX_ERROR_CHARS = 300

T = TypeVar("T")


@dataclass(frozen=True)
class ToolCall:
    """One call of an episode, as logged (rewards and filters read ``ok`` and ``error``)."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    error: str | None = None


class _ToolError(Exception):
    """A bad call: its message goes back to the model as the tool's answer."""


def tool_error(message: str) -> str:
    """The one-line JSON answer of a failed call, ``{"error": "..."}``."""
    return json.dumps({"error": str(message)[:MAX_ERROR_CHARS]})


def is_tool_error(result: Any) -> bool:
    """Whether a tool answer is an error: ours, or TRL's ``{'error': ...}`` (a dict, or its ``str``)."""
    if isinstance(result, dict):
        return "error" in result
    return isinstance(result, str) and result.lstrip().startswith(('{"error":', "{'error':"))


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
        images = row.get("images")
        source = images[0] if images is not None and len(images) else row.get("image")
        width, height = row.get("width"), row.get("height")
        if width is None or height is None:
            if source is None:
                raise ValueError("a row needs width and height, or an image")
            width, height = _image_size(source)
        boxes, labels, human = _ground_truth(row.get("instances"), row.get("pairs"))
        sample_id = str(row.get("source_id") or row.get("sample_id") or "")
        loader = None if source is None else functools.partial(_open_image, source)
        self._scene = Scene(sample_id, int(width), int(height), boxes, labels, human, loader)
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
        except _ToolError as e:
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
            raise _ToolError("no image: the environment has not been reset to a sample")
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
        query = _category(category)
        dets, _ = self._all_detections()
        if query in ALL_OBJECTS:
            mask = np.array([not d.is_human for d in dets], bool)
        else:
            names = {query, query.removesuffix("s"), query.removesuffix("es"), _ALIASES.get(query, query)}
            mask = np.isin(np.array([d.label for d in dets], dtype=object), list(names))
        return json.dumps({"category": display_name(query), "objects": self._listing(mask, with_label=True)})

    def _analyze(self, human_id: Any, object_id: Any) -> str:
        h, o = _as_id(human_id, "human_id"), _as_id(object_id, "object_id")
        dets, _ = self._all_detections()
        for name, i in (("human_id", h), ("object_id", o)):
            if i not in self._shown:
                raise _ToolError(f"unknown {name} {i}: use an id that detect_humans or detect_objects gave")
        if not dets[h].is_human:
            raise _ToolError(f"id {h} is not a person; human_id must come from detect_humans")
        if h == o:
            raise _ToolError("human_id and object_id are the same detection")
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

    def _region(self, bbox_2d: Any) -> tuple[np.ndarray, np.ndarray]:
        """A model-frame box argument → (the box clamped to the frame, its canonical pixels)."""
        scene = self._require_scene()
        box = _parse_box(bbox_2d)
        frame = self.profile.to_model([[0, 0, scene.width, scene.height]], scene.width, scene.height)[0]
        clamped = np.clip(box, frame[[0, 1, 0, 1]], frame[[2, 3, 2, 3]])
        if clamped[2] <= clamped[0] or clamped[3] <= clamped[1]:
            raise _ToolError("bbox_2d lies outside the image")
        return clamped, self.profile.from_model(clamped[None], scene.width, scene.height)[0]

    def _image_and_box(self, canonical: np.ndarray) -> tuple[Image.Image, np.ndarray]:
        """The decoded image and ``canonical`` in its pixels (a stored image may be pre-resized)."""
        scene = self._require_scene()
        image = scene.image()
        if image.size == (scene.width, scene.height):
            return image, canonical
        return image, canonical * np.array([image.width / scene.width, image.height / scene.height] * 2)

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
        view = self._fit(crop(image, box, self.min_crop))
        return [{"type": "image", "image": view}, {"type": "text", "text": zoom_result_text(np.rint(model))}]

    def _imagine(self, bbox_2d: Any, mode: Any) -> list[dict[str, Any]]:
        if not isinstance(mode, str) or mode.strip().lower() not in MODES:
            raise _ToolError(f"mode must be one of {', '.join(MODES)}")
        mode = mode.strip().lower()
        model, canonical = self._region(bbox_2d)
        image, box = self._image_and_box(canonical)
        view = self.imagine_backend.imagine(image, box, mode)
        if not isinstance(view, Image.Image):
            raise _ToolError("the imagination backend returned no image")
        return [
            {"type": "image", "image": self._fit(view)},
            {"type": "text", "text": imagine_result_text(np.rint(model), mode)},
        ]


def imagine_result_text(model_box: np.ndarray, mode: str) -> str:
    """The text that accompanies an imagined view; an outpainted one is flagged as not observed."""
    box = f"[{', '.join(str(int(v)) for v in model_box)}]"
    if mode == "outpaint":
        return f"Imagined view around {box}, extended beyond the image border (generated, not observed)."
    return f"Wider context of {box}."


def contact_likelihood(person: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Per pair, "likely" / "possible" / "unlikely" that person and object touch, from boxes alone:
    likely when they overlap by ≥ 10% of the smaller box, possible when they overlap at all or their
    edges are within 0.15 person sizes, unlikely otherwise."""
    p, o = np.asarray(person, np.float64).reshape(-1, 4), np.asarray(obj, np.float64).reshape(-1, 4)
    iw = np.minimum(p[:, 2], o[:, 2]) - np.maximum(p[:, 0], o[:, 0])  # negative: a horizontal gap
    ih = np.minimum(p[:, 3], o[:, 3]) - np.maximum(p[:, 1], o[:, 1])
    area_p = np.clip(p[:, 2] - p[:, 0], 0, None) * np.clip(p[:, 3] - p[:, 1], 0, None)
    area_o = np.clip(o[:, 2] - o[:, 0], 0, None) * np.clip(o[:, 3] - o[:, 1], 0, None)
    overlap = np.clip(iw, 0, None) * np.clip(ih, 0, None) / np.maximum(np.minimum(area_p, area_o), 1e-9)
    gap = np.hypot(np.clip(-iw, 0, None), np.clip(-ih, 0, None)) / np.sqrt(np.maximum(area_p, 1e-9))
    return np.where(overlap >= 0.1, "likely", np.where((overlap > 0) | (gap <= 0.15), "possible", "unlikely"))


# ---- untrusted arguments ----------------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _parse_box(value: Any) -> np.ndarray:
    """A model's ``[x1, y1, x2, y2]`` (a list, or its JSON text) as floats, or a tool error."""
    shape = "bbox_2d must be a list of 4 numbers [x1, y1, x2, y2]"
    if isinstance(value, str):
        if len(value) > MAX_ARGUMENT_CHARS:
            raise _ToolError("bbox_2d is too long")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _ToolError(shape) from None
    if not isinstance(value, list | tuple) or len(value) != 4 or not all(_is_number(v) for v in value):
        raise _ToolError(shape)
    try:
        box = np.array([float(v) for v in value], np.float64)
    except OverflowError:  # an int beyond float range
        raise _ToolError("bbox_2d coordinates are out of range") from None
    if not np.isfinite(box).all():
        raise _ToolError("bbox_2d must hold finite numbers")
    if np.abs(box).max() > MAX_COORDINATE:
        raise _ToolError("bbox_2d coordinates are out of range")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise _ToolError("bbox_2d must have x1 < x2 and y1 < y2")
    return box


def _category(value: Any) -> str:
    if not isinstance(value, str):
        raise _ToolError('category must be a string, e.g. "cup"')
    if len(value) > MAX_CATEGORY_CHARS:
        raise _ToolError(f"category is too long (at most {MAX_CATEGORY_CHARS} characters)")
    query = taxonomy_name(value.replace("-", " "))
    if not query:
        raise _ToolError("category is empty")
    return query


def _as_id(value: Any, name: str) -> int:
    """An id as the model may write it: 3, 3.0 or "3"."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value.strip(), re.ASCII):
        return int(value.strip())
    if _is_number(value) and math.isfinite(value) and float(value).is_integer() and abs(value) < 1e9:
        return int(value)
    raise _ToolError(f"{name} must be an integer id")


# ---- rows -------------------------------------------------------------------------------------------
def _open_image(source: Any, load: bool = True) -> Image.Image:
    """A row's image: a PIL image, ``{"bytes", "path"}``, bytes or a path; decoded when ``load``."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path")
    if isinstance(source, bytes | bytearray | memoryview):
        image = Image.open(io.BytesIO(bytes(source)))
    elif isinstance(source, str | Path):
        image = Image.open(source)
    else:
        raise ValueError(f"cannot open an image from {type(source).__name__}")
    if load:
        image.load()
    return image


def _image_size(source: Any) -> tuple[int, int]:
    """The size from the image header, without decoding the pixels."""
    if isinstance(source, Image.Image):
        return source.size
    with _open_image(source, load=False) as image:
        return image.size


def _ground_truth(instances: Any, pairs: Any) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The oracle's instances: ``instances`` when given, else the distinct boxes of ``pairs``."""
    if instances:
        boxes = np.array([i["bbox"] for i in instances], np.float64).reshape(-1, 4)
        labels = [taxonomy_name(i.get("label") or "object") for i in instances]
        human = np.array([bool(i.get("is_human")) for i in instances], bool)
        return boxes, labels, human
    entries: list[tuple[tuple[float, ...], str]] = []
    for p in pairs or []:
        entries.append((tuple(map(float, p["person_bbox"])), "person"))
        if p.get("object_bbox") is not None:
            entries.append((tuple(map(float, p["object_bbox"])), taxonomy_name(p.get("object") or "object")))
    unique = list(dict.fromkeys(entries))  # exact duplicates: one box per (box, label), first seen first
    boxes = np.array([b for b, _ in unique], np.float64).reshape(-1, 4)
    labels = [label for _, label in unique]
    return boxes, labels, np.array([label == "person" for label in labels], bool)


# ---- our own generation loop ------------------------------------------------------------------------
def call_tool(
    env: HoiEnvironment, name: str, arguments: dict[str, Any] | str | None = None
) -> str | list[dict[str, Any]]:
    """Run a model's tool call (``arguments`` as a dict or JSON text) as TRL would; never raises.
    A tool the environment does not offer is an unknown tool."""
    logged = arguments if isinstance(arguments, dict) else {"arguments": arguments}
    label = name if isinstance(name, str) else repr(name)
    try:
        tool, kwargs = _dispatch(name, arguments, type(env).offered)
    except _ToolError as e:
        return env._fail(label[:64], logged, str(e))
    return getattr(env, tool)(**kwargs)


def _dispatch(name: Any, arguments: Any, offered: Sequence[str]) -> tuple[str, dict[str, Any]]:
    if not isinstance(name, str) or name not in TOOL_NAMES or name not in offered:
        raise _ToolError(f"unknown tool; the tools are {', '.join(offered)}")
    if isinstance(arguments, str):
        if len(arguments) > MAX_ARGUMENT_CHARS:
            raise _ToolError("arguments are too long")
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            raise _ToolError("arguments must be a JSON object") from None
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, dict):
        raise _ToolError("arguments must be a JSON object")
    params = {
        k: p for k, p in inspect.signature(getattr(HoiEnvironment, name)).parameters.items() if k != "self"
    }
    unknown = [str(k)[:32] for k in arguments if k not in params]
    if unknown:
        raise _ToolError(f"{name} got unknown arguments {unknown}; it takes {list(params)}")
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in arguments]
    if missing:
        raise _ToolError(f"{name} is missing arguments {missing}")
    return name, arguments


# ---- schemas ----------------------------------------------------------------------------------------
@functools.cache
def _offering(base: type[HoiEnvironment], tools: tuple[str, ...]) -> type[HoiEnvironment]:
    if tools == base.offered:
        return base
    hidden: dict[str, Any] = {name: None for name in TOOL_NAMES if name not in tools}
    label = "".join(name.title().replace("_", "") for name in tools)
    return type(
        f"{base.__name__}With{label}", (base,), {**hidden, "offered": tools, "__module__": base.__module__}
    )


def tool_schemas(names: Sequence[str] = TOOL_NAMES) -> list[dict[str, Any]]:
    """The tools' function schemas (all five by default), in TRL's order, as
    ``transformers.utils.get_json_schema`` writes them (key order included, so the rendered prompt is
    the same text), without importing transformers: the data stages run without the training extras."""
    return [function_schema(getattr(HoiEnvironment, name)) for name in TOOL_NAMES if name in names]


# The Google-style docstring grammar transformers reads (chat_template_utils), for the hints used here.
_DESCRIPTION = re.compile(r"^(.*?)[\n\s]*(Args:|Returns:|Raises:|\Z)", re.S)
_ARGS = re.compile(r"\n\s*Args:\n(.*?)[\n\s]*(Returns:|Raises:|\Z)", re.S)
_ARG = re.compile(r"(?:^|\n)([ \t]*)(\w+):\s*(.*?)\s*(?=\n(?!\1[ \t])[ \t]*\w+:|\Z)", re.S)
_RETURNS = re.compile(r"\n\s*Returns:\n\s*(.*?)[\n\s]*(Raises:|\Z)", re.S)
_CHOICES = re.compile(r"\(choices:\s*(.*?)\)\s*$", re.I)
_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def function_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """``{"type": "function", "function": {...}}`` of ``fn`` from its type hints and docstring."""
    doc = (inspect.getdoc(fn) or "").strip()
    description = _DESCRIPTION.search(doc)
    args = _ARGS.search(doc)
    docs: dict[str, str] = {}
    if args:
        block = "\n".join(line for line in args.group(1).split("\n") if line.strip())
        docs = {m[1]: re.sub(r"\s*\n+\s*", " ", m[2].strip()) for m in _ARG.findall(block)}
    hints = get_type_hints(fn)
    params = [k for k in inspect.signature(fn).parameters if k not in ("self", "cls")]
    properties: dict[str, Any] = {}
    for k in params:
        prop = _type_schema(hints[k])
        desc = docs[k]
        choices = _CHOICES.search(desc)
        if choices:
            prop["enum"] = [c.strip() if isinstance(c, str) else c for c in json.loads(choices.group(1))]
            desc = desc[: choices.start()].strip()
        prop["description"] = desc
        properties[k] = prop
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    required = [k for k in params if inspect.signature(fn).parameters[k].default is inspect.Parameter.empty]
    if required:
        parameters["required"] = required
    out: dict[str, Any] = {
        "name": fn.__name__,
        "description": description.group(1).strip() if description else None,
        "parameters": parameters,
    }
    if "return" in hints:
        out["return"] = _type_schema(hints["return"])
        returns = _RETURNS.search(doc)
        if returns:
            out["return"]["description"] = returns.group(1).strip()
    return {"type": "function", "function": out}


def _type_schema(hint: Any) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or origin is types.UnionType:
        parts = [_type_schema(a) for a in args if a is not type(None)]
        if len(parts) == 1:
            out = parts[0]
        elif all(p.keys() == {"type"} and isinstance(p["type"], str) for p in parts):
            names = sorted({p["type"] for p in parts})
            out = {"type": names[0] if len(names) == 1 else names}
        else:
            out = {"anyOf": parts}
        if type(None) in args:
            out["nullable"] = True
        return out
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        return (
            {"type": "object", "additionalProperties": _type_schema(args[1])} if args else {"type": "object"}
        )
    if hint is Any:
        return {}
    return {"type": _JSON_TYPES[hint]}
