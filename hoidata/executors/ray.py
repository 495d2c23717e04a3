"""``--executor ray``: a job's parts on the actors of a Ray cluster.

The driver (the command line) connects to a cluster (``--ray-address``) or starts one on this
machine, and starts one actor per worker holding its CPUs and GPUs (a vLLM engine in it runs
tensor parallel over them). The job is cut into parts (``--shard j/M``, a few per worker) that go,
one at a time, to whichever actor is free. An actor runs a part in its own process through
``entry`` (the command line, in process), so the engine it loaded stays loaded for its next part.

A part whose worker dies, or whose command fails other than by a :class:`HoidataError`, goes to
the next free worker (another one when there is one) and resumes where it stopped: shards are
written atomically and a rerun skips finished ones, so nothing is lost or written twice. The driver
shows progress from the output directory (``watch``), where every worker reports.
"""

from __future__ import annotations

import os
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hoidata.errors import HoidataError
from hoidata.io import ShardSpec

PARTS_PER_WORKER = 2  # more, smaller parts: a retry redoes less, a fast worker takes more
POLL_S = 1.0


@dataclass(frozen=True)
class RayExecutor:
    """``workers`` actors of ``cpus_each`` CPUs and ``gpus_each`` GPUs; ``entry(argv)`` runs one
    part's command line in an actor's process; a part is tried ``retries`` more times."""

    workers: int
    entry: Callable[[list[str]], object]
    gpus_each: int = 0
    cpus_each: int = 1
    address: str | None = None
    retries: int = 2
    watch: Callable[[], None] | None = None  # called about every second while the driver waits

    def run(self, argv: list[str], shard: ShardSpec) -> None:
        ray = import_ray()
        started = connect(ray, self.address)
        actors: list[Any] = []
        try:
            worker = ray.remote(StageWorker).options(
                num_cpus=self.cpus_each,
                num_gpus=self.gpus_each,
                max_restarts=self.retries,
                max_task_retries=0,  # the driver retries a part itself, on whichever worker is free
            )
            actors = [worker.remote(self.entry) for _ in range(fitting_workers(ray, self))]
            parts = [
                shard.part(j, len(actors) * PARTS_PER_WORKER) for j in range(len(actors) * PARTS_PER_WORKER)
            ]
            self._schedule(ray, actors, argv, parts)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if started:
                ray.shutdown()

    def _schedule(self, ray: Any, actors: list[Any], argv: list[str], parts: list[ShardSpec]) -> None:
        pending, free = deque(parts), deque(actors)
        attempts: dict[ShardSpec, int] = {}
        running: dict[Any, tuple[Any, ShardSpec]] = {}
        cwd = os.getcwd()
        while pending or running:
            while pending and free:
                part, actor = pending.popleft(), free.popleft()
                running[actor.run.remote([*argv, "--shard", str(part)], cwd)] = (actor, part)
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            if self.watch is not None:
                self.watch()
            for ref in done:
                actor, part = running.pop(ref)
                failure = part_failure(ray, ref)
                free.append(actor)  # a died worker comes back (Ray restarts it): last in line
                if failure is None:
                    continue
                attempts[part] = attempts.get(part, 0) + 1
                if attempts[part] > self.retries:
                    raise HoidataError(
                        f"part {part} of the job failed {attempts[part]} times, last: {failure}; "
                        "rerun the same command to resume"
                    )
                print(f"ray: part {part} failed ({failure}); retrying on another worker", file=sys.stderr)
                pending.appendleft(part)


class StageWorker:
    """The actor: one process, holding its GPUs, running parts of a job one after another."""

    def __init__(self, entry: Callable[[list[str]], object]) -> None:
        self.entry = entry

    def run(self, argv: list[str], cwd: str) -> int:
        if not os.path.isdir(cwd):
            raise HoidataError(
                f"the working directory {cwd} is not on this node: run on a shared file system"
            )
        os.chdir(cwd)  # relative paths in the command line mean what they mean to the driver
        self.entry(argv)
        return os.getpid()


def part_failure(ray: Any, ref: Any) -> str | None:
    """None when the part ran; why it did not, when it may run elsewhere; raises a user error."""
    try:
        ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, HoidataError):
            raise HoidataError(str(cause)) from None
        return f"{type(cause).__name__}: {cause}" if cause is not None else str(e).splitlines()[0]
    except ray.exceptions.RayActorError:
        return "its worker process died"
    return None


def fitting_workers(ray: Any, executor: RayExecutor) -> int:
    """As many of the asked workers as the cluster can hold at once (more would wait forever)."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fit = executor.workers
    if executor.cpus_each:
        fit = min(fit, int(cpus // executor.cpus_each))
    if executor.gpus_each:
        fit = min(fit, int(gpus // executor.gpus_each))
    if fit < 1:
        raise HoidataError(
            f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs; one worker needs "
            f"{executor.cpus_each} CPUs and {executor.gpus_each} GPUs"
        )
    if fit < executor.workers:
        print(f"ray: the cluster holds {fit} of the {executor.workers} workers asked for", file=sys.stderr)
    return fit


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise HoidataError("--executor ray needs Ray: pip install 'hoidata[ray]'") from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` runs here), or start one on
    this machine. True when this call did it (and the caller shuts it down again)."""
    if ray.is_initialized():
        return False
    if address and address != "auto":
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level="WARNING")
        else:
            ray.init(include_dashboard=False, logging_level="WARNING")
    except Exception as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HoidataError(f"cannot reach {where}: {first}") from None
    return True


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line error at once for an address nothing answers at (Ray itself retries for long)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise HoidataError(
            f"--ray-address {address!r}: give host:port (e.g. 10.0.0.1:6379), ray://host:10001 or auto"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise HoidataError(f"no Ray cluster answers at {address}: {e.strerror or e}") from None
