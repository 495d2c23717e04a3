"""``--filter`` conditions, evaluated on Arrow columns: only the columns they name are read.

A condition is ``FIELD OP VALUE`` with OP one of ``= != > >= < <= ~`` (``~``: contains, any case).
FIELD is a column (``task``), a dotted path into structs and lists (``rewards.accuracy``,
``interactions.verb``), or a bare field name found in a column's structs (``verb`` is
``interactions.verb`` on a canonical dataset, ``pairs.verb`` on an SFT one). A path through a list
matches a row when any element matches. Several conditions must all hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError

OPS = ("!=", ">=", "<=", "=", ">", "<", "~")
COMPARE = {
    "=": pc.equal,
    "!=": pc.not_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
    "<": pc.less,
    "<=": pc.less_equal,
}
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def parse_condition(text: str) -> Condition:
    """``"rewards.accuracy<1"`` → Condition; the first operator found splits it."""
    found = [(text.find(op), op) for op in OPS if op in text]
    if not found:
        raise HoidataError(f"--filter {text!r}: expected FIELD OP VALUE with OP one of {' '.join(OPS)}")
    at = min(pos for pos, _ in found)
    op = max((op for pos, op in found if pos == at), key=len)  # ">=" before ">"
    field, value = text[:at].strip(), text[at + len(op) :].strip()
    if not field:
        raise HoidataError(f"--filter {text!r}: no field before {op!r}")
    return Condition(field, op, value)


def resolve_path(schema: pa.Schema, field: str) -> list[str]:
    """A condition's field as a path from a top-level column (bare names searched in structs)."""
    parts = field.split(".")
    if parts[0] in schema.names:
        return parts
    for column in schema:
        inner = _element_type(column.type)
        if pa.types.is_struct(inner) and inner.get_field_index(parts[0]) >= 0:
            return [column.name, *parts]
    raise HoidataError(f"--filter: no field {field!r}; columns: {', '.join(schema.names)}")


def matching_rows(table: pa.Table, conditions: list[tuple[list[str], Condition]]) -> np.ndarray:
    """Boolean mask of the rows meeting every condition (``table`` holds the columns they name)."""
    keep = np.ones(table.num_rows, dtype=bool)
    for path, cond in conditions:
        values, owner = _values(table.column(path[0]).combine_chunks(), path)
        hit = _compare(values, cond)
        if owner is None:
            keep &= hit
        else:
            rows = np.zeros(table.num_rows, dtype=bool)
            rows[owner[hit]] = True
            keep &= rows
    return keep


def _element_type(t: pa.DataType) -> pa.DataType:
    while pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
    return t


def _values(array: pa.Array, path: list[str]) -> tuple[pa.Array, np.ndarray | None]:
    """The leaf values a path reaches, with the row each came from (None: one per row)."""
    owner: np.ndarray | None = None

    def flatten(a: pa.Array) -> pa.Array:
        nonlocal owner
        parents = pc.list_parent_indices(a).to_numpy()
        owner = parents if owner is None else owner[parents]
        return pc.list_flatten(a)

    for part in path[1:]:
        while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type):
            array = flatten(array)
        if not pa.types.is_struct(array.type) or array.type.get_field_index(part) < 0:
            raise HoidataError(f"--filter: {'.'.join(path)}: no field {part!r} there")
        array = pc.struct_field(array, part)
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = flatten(array)
    return array, owner


def _compare(values: pa.Array, cond: Condition) -> np.ndarray:
    t = values.type
    if cond.op == "~":
        text = values if pa.types.is_string(t) else pc.cast(values, pa.string())
        result = pc.match_substring(text, cond.value, ignore_case=True)
    else:
        result = COMPARE[cond.op](values, pa.scalar(_typed(cond, t), t))
    return result.fill_null(False).to_numpy(zero_copy_only=False)


def _typed(cond: Condition, t: pa.DataType) -> object:
    """The condition's value as the column's type."""
    try:
        if pa.types.is_boolean(t):
            low = cond.value.lower()
            if low not in TRUE + FALSE:
                raise ValueError(cond.value)
            return low in TRUE
        if pa.types.is_integer(t):
            return int(cond.value)
        if pa.types.is_floating(t):
            return float(cond.value)
    except ValueError:
        raise HoidataError(f"--filter {cond}: {cond.value!r} is not a {t} value") from None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return cond.value
    raise HoidataError(f"--filter {cond}: cannot compare a {t} field")
