"""The package's own category tables agree with the public reference files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from hoidata.schemas.taxonomy import hico_coco_ids, hico_det, swig_hoi


def _tsv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(), delimiter="\t"))


def test_hico_verbs_objects_hois(reference: Path) -> None:
    tax = hico_det()
    assert len(tax.verbs) == 117 and len(tax.objects) == 80 and tax.num_hois == 600
    upt = json.loads((reference / "hico" / "upt_instances_test2015.json").read_text())
    assert list(tax.verbs) == upt["verbs"]
    assert list(tax.objects) == upt["objects"]
    corr = np.array(upt["correspondence"])  # (hoi, object, verb)
    assert np.array_equal(corr[:, 0], np.arange(600))
    assert np.array_equal(corr[:, 1], tax.hoi_object)
    assert np.array_equal(corr[:, 2], tax.hoi_verb)
    assert set(np.flatnonzero(tax.flags["rare"])) == set(upt["rare"])
    assert set(np.flatnonzero(tax.flags["rare"] == 0)) == set(upt["non_rare"])


def test_hico_official_action_list(reference: Path) -> None:
    tax = hico_det()
    rows = _tsv(reference / "hico" / "hoi_600.tsv")
    assert [(r["verb"], r["object"]) for r in rows] == [
        (tax.verbs[v], tax.objects[o]) for v, o in zip(tax.hoi_verb, tax.hoi_object, strict=True)
    ]
    assert [int(r["rare"]) for r in rows] == tax.flags["rare"].tolist()


def test_hico_zero_shot_splits(reference: Path) -> None:
    tax = hico_det()
    z = json.loads((reference / "hico" / "zero_shot_splits.json").read_text())
    for name in ("rare_first", "non_rare_first", "unseen_object", "unseen_verb"):
        assert sorted(np.flatnonzero(tax.flags[name]).tolist()) == sorted(z[name]), name
    for k in range(5):
        assert sorted(np.flatnonzero(tax.flags[f"uc{k}"]).tolist()) == sorted(z[f"hoiclip_uc{k}"])
    assert tax.flags["rare_first"].sum() == 120 and (tax.flags["rare_first"] <= tax.flags["rare"]).all()
    unseen_verbs = sorted(set(tax.hoi_verb[tax.flags["unseen_verb"] == 1].tolist()))
    assert unseen_verbs == sorted(z["unseen_verb_ids_0based"])


def test_hico_coco_mapping_and_correspondence_mask(reference: Path) -> None:
    tax = hico_det()
    coco_to_hico = json.loads((reference / "hico" / "coco91tohico80.json").read_text())
    assert {int(k): v for k, v in coco_to_hico.items()} == {int(c): i for i, c in enumerate(hico_coco_ids())}
    # corre_hico.npy is indexed [verb, coco80 index]
    objects = _tsv(reference / "hico" / "objects_80.tsv")
    coco80 = np.array([int(r["coco80_idx_0based"]) for r in objects])
    mask = np.load(reference / "hico" / "corre_hico.npy")
    ours = np.zeros((117, 80))
    ours[tax.hoi_verb, coco80[tax.hoi_object]] = 1
    assert np.array_equal(mask, ours)


def test_hoi_lookup() -> None:
    tax = hico_det()
    ids = tax.hoi_ids(tax.hoi_verb, tax.hoi_object)
    assert np.array_equal(ids, np.arange(600))
    assert tax.hoi_ids(np.array([0, 200, -1]), np.array([0, 0, 0])).tolist()[1:] == [-1, -1]


def test_swig_tables(reference: Path) -> None:
    tax = swig_hoi()
    cats = json.loads((reference / "swig" / "categories_1000.json").read_text())
    acts = json.loads((reference / "swig" / "actions_407.json").read_text())
    inter = json.loads((reference / "swig" / "interactions_14130.json").read_text())
    assert list(tax.objects) == [c["name"] for c in cats]
    assert list(tax.verbs) == [a["name"] for a in acts]
    assert tax.num_hois == 14_130 and tax.human_object_id == 0
    assert tax.hoi_verb.tolist() == [i["action_id"] for i in inter]
    assert tax.hoi_object.tolist() == [i["object_id"] for i in inter]
    assert tax.flags["frequency"].tolist() == [i["frequency"] for i in inter]
    assert tax.flags["evaluation"].tolist() == [i["evaluation"] for i in inter]
    assert tax.hoi_names() == [i["name"] for i in inter]
    ev = tax.flags["evaluation"] == 1
    assert ev.sum() == 5539
    assert [int((ev & (tax.flags["frequency"] == f)).sum()) for f in (0, 1, 2)] == [1391, 2841, 1307]
