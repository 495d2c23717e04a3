"""Where a stage's shards run. A stage command is a pure function of its options and
``--shard i/N``, and any number of processes (on one machine or several, over a shared file system)
fill one output directory; an executor decides which processes run which shards. ``local`` runs
``--dp`` processes on this machine; a Ray or Slurm executor implements the same :class:`Executor`."""

from hoidata.executors.base import Executor, without_options
from hoidata.executors.local import LocalProcesses

__all__ = ["Executor", "LocalProcesses", "without_options"]
