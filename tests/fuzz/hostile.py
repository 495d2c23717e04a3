"""Hostile text for every parser: arbitrary Unicode (lone surrogates and NUL included), huge numbers,
deep nesting, long strings, and near-misses of each answer format."""

from __future__ import annotations

from hypothesis import strategies as st

ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())  # surrogates too
ANY_TEXT = st.text(ANY_CHAR, max_size=200)
NUMBER = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["1e999", "-1e999", "NaN", "nan", "Infinity", "-0", "1e-400", "0x10", "1_000", "١٢٣"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
BOX = st.lists(NUMBER, min_size=0, max_size=6).map(lambda xs: "[" + ", ".join(xs) + "]")
TOKEN_BOX = st.tuples(NUMBER, NUMBER, NUMBER, NUMBER).map(
    lambda v: f"<|box_start|>({v[0]},{v[1]}),({v[2]},{v[3]})<|box_end|>"
)
GRID_BOX = st.tuples(NUMBER, NUMBER, NUMBER, NUMBER).map(lambda v: "{" + "".join(f"<{x}>" for x in v) + "}")
ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "person_bbox_2d": st.one_of(BOX, NUMBER, ANY_TEXT.map(repr)),
        "object_bbox_2d": st.one_of(BOX, NUMBER, st.just("null")),
        "verb": st.one_of(ANY_TEXT.map(lambda t: '"' + t.replace('"', "") + '"'), NUMBER, st.just("null")),
        "object": st.one_of(ANY_TEXT.map(lambda t: '"' + t.replace('"', "") + '"'), st.just("[]")),
        "bbox_2d": BOX,
        "label": st.just('"person"'),
    },
).map(lambda d: "{" + ", ".join(f'"{k}": {v}' for k, v in d.items()) + "}")
NESTED = st.integers(1, 3000).map(lambda n: "[" * n + "1" + "]" * n)
PIECE = st.one_of(
    ANY_TEXT,
    BOX,
    TOKEN_BOX,
    GRID_BOX,
    ENTRY,
    NESTED,
    st.sampled_from(
        [
            "<answer>",
            "</answer>",
            "<think>",
            "</think>",
            "<tool_call>",
            "</tool_call>",
            "\x00",
            "\ud800",
            "\udfff",
            "[",
            "]",
            "{",
            "}",
            ",",
            '"',
            "\\",
            "<|object_ref_start|>person",
        ]
    ),
)
COMPLETION = st.lists(PIECE, max_size=12).map("".join)
HUGE = [  # a megabyte of text, deep nesting, an answer of 50,000 boxes
    "x" * 1_000_000,
    "[" * 200_000,
    "<answer>" + "[1, 2, 3, 4], " * 50_000 + "</answer>",
    '<answer>[{"person_bbox_2d": ' * 20_000 + "</answer>",
]
