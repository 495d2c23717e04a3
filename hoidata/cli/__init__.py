"""The ``hoidata`` command line: :mod:`hoidata.cli.main` assembles it; one module per command group,
each only parsing options and calling its stage."""

from hoidata.cli.main import app, main

__all__ = ["app", "main"]
