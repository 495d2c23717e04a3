"""``hoidata push``: publish dataset directories to the Hugging Face Hub as a `datasets`-ready repo.

The repository tree (see :mod:`hoidata.publish.tree`) is built locally first, and it is exactly what
gets uploaded (``--dry-run`` stops there), so everything about a publication can be checked offline.
Modules: ``source`` (the input directories and their Features), ``embed`` (image bytes), ``shards``
(Parquet output), ``examples`` and ``card`` (README.md), ``tree`` (the build), ``hub`` (the upload).
"""

from hoidata.publish.hub import PushResult, push
from hoidata.publish.sizes import DEFAULT_MAX_SHARD_SIZE, human_size, parse_size
from hoidata.publish.tree import build_repo_tree, format_tree

__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "PushResult",
    "build_repo_tree",
    "format_tree",
    "human_size",
    "parse_size",
    "push",
]
