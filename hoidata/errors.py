"""User-facing errors: one line that names the file, the record and the field."""

from __future__ import annotations

from dataclasses import dataclass


def locate(file: str | None = None, record: int | str | None = None, field: str | None = None) -> str:
    """Render 'file: record 12: field bbox' from whichever parts are known."""
    parts = []
    if file is not None:
        parts.append(str(file))
    if record is not None:
        parts.append(f"record {record}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ": ".join(parts)


class HoidataError(Exception):
    """An error caused by the user's input or options; the CLI prints it as one line, exit code 2."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        record: int | str | None = None,
        field: str | None = None,
    ) -> None:
        self.message, self.file, self.record, self.field = message, file, record, field
        where = locate(file, record, field)
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one input record was rejected; record-level faults never stop a run."""

    field: str
    reason: str
