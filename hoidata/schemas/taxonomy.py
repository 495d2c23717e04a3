"""HICO-DET and SWIG-HOI category tables (the package's own copies, in ``tables/``).

All ids are 0-based. A taxonomy maps (verb, object) to its HOI class through a dense lookup
matrix, so that converters derive and check HOI ids for whole files at once.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np


def _read_table(name: str) -> dict[str, list[str]]:
    text = resources.files("hoidata.schemas").joinpath("tables", name).read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    header, body = rows[0], rows[1:]
    return {col: [r[i] for r in body] for i, col in enumerate(header)}


@dataclass(frozen=True, eq=False)
class Taxonomy:
    """Verbs, objects and HOI classes of one dataset, with per-HOI flags (rare, zero-shot splits…)."""

    name: str
    verbs: tuple[str, ...]
    objects: tuple[str, ...]
    hoi_verb: np.ndarray  # (n_hois,) verb id of each HOI class
    hoi_object: np.ndarray  # (n_hois,) object id of each HOI class
    human_object_id: int
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # per-HOI int arrays

    @property
    def num_hois(self) -> int:
        return len(self.hoi_verb)

    hoi_lookup: np.ndarray = field(init=False, repr=False)  # [verb, object] → HOI id, -1 if none

    def __post_init__(self) -> None:
        table = np.full((len(self.verbs), len(self.objects)), -1, dtype=np.int64)
        table[self.hoi_verb, self.hoi_object] = np.arange(self.num_hois)
        object.__setattr__(self, "hoi_lookup", table)

    def hoi_ids(self, verbs: np.ndarray, objects: np.ndarray) -> np.ndarray:
        """HOI ids of (verb, object) pairs, -1 where invalid or out of range."""
        verbs, objects = np.asarray(verbs, np.int64), np.asarray(objects, np.int64)
        ok = (verbs >= 0) & (verbs < len(self.verbs)) & (objects >= 0) & (objects < len(self.objects))
        out = np.full(verbs.shape, -1, dtype=np.int64)
        out[ok] = self.hoi_lookup[verbs[ok], objects[ok]]
        return out

    def hoi_names(self) -> list[str]:
        return [
            f"{self.verbs[v]} {self.objects[o]}" for v, o in zip(self.hoi_verb, self.hoi_object, strict=True)
        ]


@cache
def hico_det() -> Taxonomy:
    """HICO-DET: 117 verbs, 80 objects (alphabetical), 600 HOIs with the rare flag (fewer than 10
    training instances) and the four zero-shot splits (rare_first, non_rare_first, unseen_object,
    unseen_verb), plus the five extra unseen-composition sets uc0–uc4."""
    verbs = _read_table("hico_verbs.tsv")
    objects = _read_table("hico_objects.tsv")
    hois = _read_table("hico_hois.tsv")
    flag_cols = [c for c in hois if c not in ("hoi_id", "verb_id", "object_id")]
    return Taxonomy(
        name="hico-det",
        verbs=tuple(verbs["name"]),
        objects=tuple(objects["name"]),
        hoi_verb=np.array(hois["verb_id"], dtype=np.int64),
        hoi_object=np.array(hois["object_id"], dtype=np.int64),
        human_object_id=objects["name"].index("person"),
        flags={c: np.array(hois[c], dtype=np.int64) for c in flag_cols},
    )


@cache
def hico_coco_ids() -> np.ndarray:
    """COCO-91 category id of each HICO object (alphabetical order), as PPDM-style files use."""
    return np.array(_read_table("hico_objects.tsv")["coco_id"], dtype=np.int64)


@cache
def swig_hoi() -> Taxonomy:
    """SWIG-HOI: 407 actions, 1000 objects, 14,130 HOIs with ``frequency`` (0 novel, 1 rare,
    2 common) and ``evaluation`` (1 for the 5,539 classes that the benchmark scores)."""
    actions = _read_table("swig_actions.tsv")
    objects = _read_table("swig_objects.tsv")
    hois = _read_table("swig_hois.tsv")
    return Taxonomy(
        name="swig-hoi",
        verbs=tuple(actions["name"]),
        objects=tuple(objects["name"]),
        hoi_verb=np.array(hois["action_id"], dtype=np.int64),
        hoi_object=np.array(hois["object_id"], dtype=np.int64),
        human_object_id=objects["name"].index("person"),
        flags={c: np.array(hois[c], dtype=np.int64) for c in ("frequency", "evaluation")},
    )


ZERO_SHOT_SPLITS = ("rare_first", "non_rare_first", "unseen_object", "unseen_verb")
