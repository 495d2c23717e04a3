"""The compiled answer scanner reads exactly what orjson reads, on every text it accepts.

Answers are generated from the answer grammar and then bent the ways model output bends: other
whitespace, key orders, nulls, decimals, exponents, leading zeros, long integers, escapes, unknown
or repeated keys, lists of the wrong length, prose, code fences, several or unclosed answer blocks,
and random cuts and insertions. Whatever the scanner accepts must equal the orjson reader's result
field for field; the rest it must hand to that reader.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoidata.profiles import get_profile
from hoidata.profiles.answers import (
    Entries,
    _json_entries,
    _orjson_entries,
    _scan,
    answer_body,
    parse_answers,
)

KEYS = ["person_bbox_2d", "object_bbox_2d", "bbox_2d", "label", "verb", "object"]
JSON_WHITESPACE, OTHER_WHITESPACE = ["", " ", "  ", "\n", "\t", "\r\n"], ["\x0c", "\u00a0"]
WORDS = ["ride", "sports ball", "Person", "", " Look At ", "café"]
ODD_WORDS = ["hold<x>", "</answer>", "a\\b", 'say "hi"', "tab\t"]


def pick(draw: st.DrawFn, common: list[Any], odd: list[Any], bent: bool) -> Any:
    """Usually a common choice; in a bent answer, now and then an odd one."""
    if bent and draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from(odd))
    return draw(st.sampled_from(common))


def number_text(draw: st.DrawFn, bent: bool) -> str:
    kind = pick(draw, ["int", "int", "negative"], ["decimal", "exponent", "zeros", "long", "null"], bent)
    value = draw(st.integers(0, 4000))
    if kind == "decimal":
        return f"{value}.{draw(st.integers(0, 99))}"
    if kind == "exponent":
        return f"{value}e{draw(st.integers(-2, 2))}"
    if kind == "long":
        return str(draw(st.integers(10**14, 10**17)))
    return {"int": str(value), "negative": f"-{value}", "zeros": f"0{value}", "null": "null"}[kind]


def value_text(draw: st.DrawFn, key: str, ws: Any, bent: bool) -> str:
    kind = pick(draw, ["right", "right", "right", "null"], ["wrong"], bent)
    if kind == "null":
        return "null"
    if (kind == "right") == key.endswith("bbox_2d"):
        size = pick(draw, [4], [3, 5, 0], bent)
        return "[" + ws() + ("," + ws()).join(number_text(draw, bent) for _ in range(size)) + ws() + "]"
    word = pick(draw, WORDS, ODD_WORDS, bent)
    return json.dumps(word, ensure_ascii=pick(draw, [False], [True], bent))


@st.composite
def answers(draw: st.DrawFn) -> str:
    """An answer text; a ``bent`` one strays, here and there, from what the scanner accepts."""
    bent = draw(st.booleans())
    spaces = [pick(draw, JSON_WHITESPACE, OTHER_WHITESPACE, bent) for _ in range(3)]

    def ws() -> str:
        return draw(st.sampled_from(spaces))

    entries = []
    for _ in range(draw(st.integers(0, 4))):
        keys = draw(st.lists(st.sampled_from(KEYS), max_size=5, unique=True))
        if draw(st.booleans()):
            keys = ["person_bbox_2d", "verb", "object", "object_bbox_2d"]  # the rendered order
        keys += pick(draw, [[]], [["confidence"], keys[-1:]], bent)  # an unknown or a repeated key
        members = [f'"{k}"{ws()}:{ws()}{value_text(draw, k, ws, bent)}' for k in keys]
        entries.append("{" + ws() + ("," + ws()).join(members) + ws() + "}")
    body = "[" + ws() + ("," + ws()).join(entries) + ws() + "]"
    if len(entries) == 1 and draw(st.booleans()):
        body = entries[0]  # one object, not a list
    body = ws() + body + ws()
    if pick(draw, [False], [True], bent):  # a cut or a stray character
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from(["", "]", "{", ",", "<", "x"])) + body[at + 1 :]
    wrap = draw(
        st.sampled_from(
            [
                "{}",
                "<think>a</think><answer>{}</answer>",
                "<think>a</think><answer>{}</answer>",
                "<think>a</think><answer>{}",
                "<answer>[]</answer> and then <answer>{}</answer>",
                "<answer>{}</answer><answer>unclosed",
                "</answer><answer>{}",
                "```json\n{}\n```",
                "I think so: {} is my answer",
                "no answer here",
            ]
        )
    )
    return wrap.replace("{}", body, 1) if "{}" in wrap else wrap


def assert_same(scanned: Entries, read: Entries) -> None:
    np.testing.assert_array_equal(scanned.counts, read.counts)
    np.testing.assert_array_equal(scanned.boxes, read.boxes)
    np.testing.assert_array_equal(scanned.person_null, read.person_null)
    for field in ("label", "verb", "object"):
        assert getattr(scanned, field).to_pylist() == getattr(read, field).to_pylist(), field


@given(texts=st.lists(answers(), min_size=1, max_size=8))
@settings(max_examples=400, deadline=None)
def test_the_scanner_reads_what_orjson_reads(texts: list[str]) -> None:
    assert_same(_json_entries(texts, scan=True), _orjson_entries([answer_body(t) for t in texts]))


@given(texts=st.lists(answers(), min_size=2, max_size=8))
@settings(max_examples=200, deadline=None)
def test_a_text_reads_the_same_in_any_batch(texts: list[str]) -> None:
    """orjson's reader converts chunks of entries at once; an ill-typed neighbour changes nothing."""
    batch = _orjson_entries([answer_body(t) for t in texts])
    alone = [_orjson_entries([answer_body(t)]) for t in texts]
    np.testing.assert_array_equal(batch.counts, [a.counts[0] for a in alone])
    np.testing.assert_array_equal(batch.boxes, np.concatenate([a.boxes for a in alone]))
    np.testing.assert_array_equal(batch.person_null, np.concatenate([a.person_null for a in alone]))


def test_an_ill_typed_neighbour_across_a_chunk_changes_nothing() -> None:
    """A person box with a null, next to an entry Arrow refuses: the person box stays unreadable
    (the entry is dropped) rather than being replaced by the entry's ``bbox_2d``."""
    odd = '[{"person_bbox_2d": [1, 2, 3, null], "bbox_2d": [10, 20, 300, 400], "verb": "ride"}]'
    texts = ["[]"] * 1023 + [odd, '[{"label": 5}]', '[{"person_bbox_2d": "", "bbox_2d": [1, 2, 3, 4]}]']
    batch = _json_entries(texts, scan=True)
    alone = [_orjson_entries([answer_body(t)]) for t in texts[-3:]]
    assert batch.counts[-3:].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(batch.person_null, np.concatenate([a.person_null for a in alone]))
    assert not batch.person_null[[0, 2]].any()
    assert parse_answers(get_profile("qwen2.5-vl"), texts, 640, 480).counts.sum() == 0


@pytest.mark.parametrize("name", ["qwen2.5-vl", "qwen3-vl"])
def test_rendered_answers_take_the_compiled_path(name: str) -> None:
    """What hoidata writes (and so what a trained policy writes) never needs orjson."""
    p = get_profile(name)
    rng = np.random.default_rng(0)
    person = rng.uniform(0, 300, (6, 4)).cumsum(axis=1)
    verbs, objects = pa.array(["ride", "look at"] * 3), pa.array(["horse", ""] * 3)
    entries = p.pair_texts(person, person + 5, [True, False] * 3, verbs, objects)
    texts = [f"<think>x</think><answer>[{', '.join(entries.to_pylist()[:k])}]</answer>" for k in range(4)]
    texts += ["I cannot tell.", "<answer>none</answer>"]
    scanned = _scan(texts)
    assert scanned is not None and scanned[0].all()
    assert_same(scanned[1], _orjson_entries([answer_body(t) for t in texts]))
    assert scanned[1].counts.tolist() == [0, 1, 2, 3, 0, 0]


BOX = '"person_bbox_2d": [1, 2, 30, 40]'
EDGES = {  # each rule of the accepted subset, at its edge
    "a close tag in a string": f'<answer>[{{{BOX}, "verb": "</answer>"}}]</answer>',
    "a tag-like string": f'<answer>[{{{BOX}, "verb": "<b>ride"}}]</answer>',
    "a leading zero": '[{"person_bbox_2d": [01, 2, 30, 40]}]',
    "negative zero": '[{"person_bbox_2d": [-0, 2, 30, 40]}]',
    "a fraction": '[{"person_bbox_2d": [1.5, 2, 30, 40]}]',
    "an exponent": '[{"person_bbox_2d": [1e1, 2, 30, 40]}]',
    "15 digits": '[{"person_bbox_2d": [999999999999999, 2, 30, 40]}]',
    "18 digits": '[{"person_bbox_2d": [934948642789419743, 2, 30, 40]}]',
    "a minus alone": '[{"person_bbox_2d": [-, 2, 30, 40]}]',
    "three numbers": '[{"person_bbox_2d": [1, 2, 30]}]',
    "a nested list": '[{"person_bbox_2d": [[1, 2], 30, 40]}]',
    "a string box": '[{"person_bbox_2d": "1, 2, 30, 40"}]',
    "a number verb": f'[{{{BOX}, "verb": 3}}]',
    "a true verb": f'[{{{BOX}, "verb": true}}]',
    "a null verb": f'[{{{BOX}, "verb": null}}]',
    "a repeated key, then null": f'[{{{BOX}, "verb": "ride", "verb": null}}]',
    "an unknown key": f'[{{{BOX}, "score": 1}}]',
    "an escape": f'[{{{BOX}, "verb": "ri\\u0064e"}}]',
    "a raw tab in a string": f'[{{{BOX}, "verb": "ri\tde"}}]',
    "form feed around": f"\x0c[{{{BOX}}}]\x0c",
    "no-break space around": f"\u00a0[{{{BOX}}}]",
    "JSON whitespace everywhere": f'\n[ {{ {BOX} ,\r\n\t"verb" : "ride" }} ]\n',
    "an empty entry": "[{}]",
    "an empty list": "<answer> [ ] </answer>",
    "one object": f"{{{BOX}}}",
    "a trailing comma": f"[{{{BOX}}},]",
    "a missing comma": f"[{{{BOX}}} {{{BOX}}}]",
    "text after the list": f"[{{{BOX}}}] done",
    "a list inside prose": f"The pairs: [{{{BOX}}}] as asked",
    "prose": "I think the person rides the horse.",
    "a grounding entry": '[{"bbox_2d": [1, 2, 30, 40], "label": "person"}]',
    "a null in a box": '[{"person_bbox_2d": [1, 2, 30, null], "bbox_2d": [1, 2, 30, 40]}]',
}


@pytest.mark.parametrize("text", EDGES.values(), ids=EDGES.keys())
def test_the_scanner_reads_what_orjson_reads_at_every_edge(text: str) -> None:
    assert_same(_json_entries([text], scan=True), _orjson_entries([answer_body(text)]))


def test_texts_python_cannot_encode_go_to_orjson() -> None:
    texts = ['<answer>[{"person_bbox_2d": [1, 2, 3, 4], "verb": "\ud800"}]</answer>', "[]"]
    assert _scan(texts) is None
    assert _json_entries(texts, scan=True).counts.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("<think>t</think><answer>A</answer>", "A"),
        ("<answer>A</answer> then <answer>B</answer>", "B"),
        ("<answer>A</answer> then <answer>B", "A"),
        ("<answer>A <answer>B</answer>", "B"),
        ("</answer><answer>B", "</answer><answer>B"),
        ("<answer>A</answer>B</answer>", "A"),
        ("no tags", "no tags"),
    ],
)
def test_answer_body_is_the_last_closed_block(text: str, body: str) -> None:
    assert answer_body(text) == body
