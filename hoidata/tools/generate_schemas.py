"""Regenerate the shipped ``schemas.json`` from the environment's methods, with the function TRL uses
(``transformers.utils.get_json_schema``); needs the ``train`` extra.

    python -m hoidata.tools.generate_schemas           # exit 1 when the shipped file is stale
    python -m hoidata.tools.generate_schemas --write   # rewrite it after changing a tool's signature or docstring
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from typing import Any

from hoidata.tools.environment import HoiEnvironment
from hoidata.tools.names import TOOL_NAMES
from hoidata.tools.schemas import SCHEMAS_FILE


def library_schemas() -> list[dict[str, Any]]:
    """What TRL builds for the environment's tools: the schema of each bound method, in TRL's order."""
    from transformers.utils import get_json_schema

    env = HoiEnvironment()
    return [get_json_schema(getattr(env, name)) for name in TOOL_NAMES]


def schemas_text(schemas: list[dict[str, Any]]) -> str:
    """The file's text: indented for review, key order kept (it is the order of the rendered prompt)."""
    return json.dumps(schemas, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {SCHEMAS_FILE} instead of checking it")
    args = parser.parse_args(argv)
    path = resources.files(__package__).joinpath(SCHEMAS_FILE)
    text = schemas_text(library_schemas())
    if args.write:
        with resources.as_file(path) as file:
            file.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
        return 0
    if path.read_text(encoding="utf-8") != text:
        print(f"{path} is stale: run python -m hoidata.tools.generate_schemas --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
