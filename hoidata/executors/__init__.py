"""Where a stage's shards run. A stage command is a pure function of its options and
``--shard i/N``, and any number of processes (on one machine or several, over a shared file system)
fill one output directory; an executor decides which processes run which shards: ``local`` runs
processes on this machine, ``ray`` the actors of a Ray cluster, ``slurm`` the tasks of an sbatch
array. Each implements :class:`Executor`."""

from hoidata.executors.base import KEEP_ENGINES, Executor, without_options
from hoidata.executors.local import LocalProcesses
from hoidata.executors.ray import RayExecutor
from hoidata.executors.slurm import SlurmArray, array_task
from hoidata.executors.watch import ShardWatch, shards_written

__all__ = [
    "KEEP_ENGINES",
    "Executor",
    "LocalProcesses",
    "RayExecutor",
    "ShardWatch",
    "SlurmArray",
    "array_task",
    "shards_written",
    "without_options",
]
