"""The tools' function schemas, shipped as ``schemas.json`` next to this module.

TRL builds the tool list of GRPO with ``transformers.utils.get_json_schema`` from the environment's
methods; SFT data must offer the model the very same text. The data stages run without the training
extras, so the schemas are generated once by that function (see :mod:`hoidata.tools.generate_schemas`)
and read here, and a test checks the file against the library.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from hoidata.tools.names import TOOL_NAMES

SCHEMAS_FILE = "schemas.json"


@functools.cache
def _schemas_text() -> str:
    return resources.files(__package__).joinpath(SCHEMAS_FILE).read_text(encoding="utf-8")


def tool_schemas(names: Sequence[str] = TOOL_NAMES) -> list[dict[str, Any]]:
    """The schemas of the tools in ``names`` (all five by default), in TRL's order, exactly as
    ``get_json_schema`` writes them (key order included: it is the rendered prompt). A fresh copy each call."""
    return [schema for schema in json.loads(_schemas_text()) if schema["function"]["name"] in names]
