"""Multi-GPU and multi-node launch: the exact ``accelerate launch`` command for a recipe.

One process trains in-process (no launcher). More than one runs
``accelerate launch --config_file <shipped YAML> ... -m hoidata.trainers.run RECIPE``, where the YAML
picks the backend (DDP, DeepSpeed ZeRO-2/3, FSDP2) and the command line sets the sizes, so the same
config files serve every cluster shape. In accelerate, ``--num_processes`` is the total over all
machines (each node starts ``num_processes // num_machines``), so 2 nodes × 8 GPUs is 16.

The command is built here and checked against accelerate's own argument parser without running it,
so a printed command is one that ``accelerate launch`` accepts.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from hoidata.errors import HoidataError

Backend = Literal["ddp", "zero2", "zero3", "fsdp"]
BACKENDS: tuple[str, ...] = get_args(Backend)
MIXED_PRECISION = ("no", "fp16", "bf16", "fp8")  # accelerate's --mixed_precision choices
DEFAULT_PORT = 29500
RUN_MODULE = "hoidata.trainers.run"

_CONFIG_FILES = {"ddp": "multi_gpu.yaml", "zero2": "zero2.yaml", "zero3": "zero3.yaml", "fsdp": "fsdp.yaml"}


def config_file(backend: str) -> Path:
    """The accelerate config shipped for ``backend`` (package data, so it works from an install)."""
    if backend not in _CONFIG_FILES:
        raise HoidataError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(str(resources.files("hoidata.trainers").joinpath("accelerate", _CONFIG_FILES[backend])))
    if not path.is_file():
        raise HoidataError(
            f"accelerate config for {backend!r} is missing from the install; reinstall hoidata",
            file=str(path),
        )
    return path


def needs_launcher(num_gpus: int, nodes: int = 1) -> bool:
    """Whether the run needs ``accelerate launch``: one process trains in-process, no launcher."""
    return num_gpus * nodes > 1


def default_backend(num_gpus: int, nodes: int = 1) -> Backend | None:
    """ZeRO-3 for any multi-process run (it fits the largest models); ``None`` for one process."""
    return "zero3" if needs_launcher(num_gpus, nodes) else None


def launch_command(
    recipe_file: Path | str,
    *,
    num_gpus: int,
    backend: str | None = None,
    nodes: int = 1,
    node_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int = DEFAULT_PORT,
    mixed_precision: str | None = None,
    config: Path | str | None = None,
) -> list[str]:
    """The ``accelerate launch`` argv that trains ``recipe_file`` on ``num_gpus`` GPUs per node.

    ``backend`` defaults to ZeRO-3. ``config`` replaces the shipped YAML with the user's own
    accelerate config (the size options on the command line still win over it). For several nodes,
    run the command on every node with its own ``node_rank``; ``main_process_ip`` is node 0's address.
    ``mixed_precision`` overrides the config's (bf16 in every shipped one).
    """
    _check_int("num_gpus", num_gpus, low=1)
    _check_int("nodes", nodes, low=1)
    _check_int("node_rank", node_rank, low=0)
    _check_int("main_process_port", main_process_port, low=1, high=65535)
    if node_rank >= nodes:
        raise HoidataError(f"node_rank must be in 0..{nodes - 1} for {nodes} node(s), got {node_rank}")
    if nodes > 1 and not main_process_ip:
        raise HoidataError(f"{nodes} nodes need main_process_ip: the address of node 0, reachable from all")
    if mixed_precision is not None and mixed_precision not in MIXED_PRECISION:
        raise HoidataError(
            f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}"
        )
    backend = backend or "zero3"
    if backend not in BACKENDS:
        raise HoidataError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    total = num_gpus * nodes
    if backend == "ddp" and total < 2:
        raise HoidataError("ddp needs at least 2 processes; one GPU trains in-process without a launcher")
    if config is not None:
        cfg = Path(config)
        if not cfg.is_file():
            raise HoidataError("accelerate config file not found", file=str(cfg))
    else:
        cfg = config_file(backend)

    argv = [
        "accelerate",
        "launch",
        "--config_file",
        str(cfg),
        "--num_processes",
        str(total),
        "--num_machines",
        str(nodes),
        "--machine_rank",
        str(node_rank),
    ]
    if main_process_ip:
        argv += ["--main_process_ip", main_process_ip]
    if main_process_ip or main_process_port != DEFAULT_PORT:
        argv += ["--main_process_port", str(main_process_port)]
    if mixed_precision is not None:
        argv += ["--mixed_precision", mixed_precision]
    return [*argv, "-m", RUN_MODULE, str(recipe_file)]


def format_command(argv: list[str]) -> str:
    """``argv`` as one shell line that can be copied and pasted as is (quoted where needed)."""
    return shlex.join(argv)


def validate_command(argv: list[str]) -> Any:
    """Check ``accelerate launch ...`` against accelerate's own parser and config loader; runs nothing.

    Every option must be one ``accelerate launch`` knows and every value must have its type, the
    config file must be one accelerate reads, and the sizes must agree (processes divisible by
    machines, rank in range, an address for several machines). Returns the parsed namespace.
    """
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    if argv[:2] != ["accelerate", "launch"]:
        raise HoidataError(f"not an accelerate launch command: {format_command(argv[:2])}")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = launch_command_parser().parse_args(argv[2:])
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else "it stops before running (--help?)"
        raise HoidataError(f"accelerate launch rejects the command: {reason}") from None

    if args.config_file is not None:
        try:
            load_config_from_file(args.config_file)
        except (OSError, ValueError, TypeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise HoidataError(f"accelerate cannot read the config: {first}", file=args.config_file) from None
    procs, machines, rank = args.num_processes, args.num_machines, args.machine_rank
    if procs is None or procs < 1:
        raise HoidataError("the command needs --num_processes >= 1 (the shipped configs leave it unset)")
    if machines is not None:
        if machines < 1 or procs % machines:
            raise HoidataError(
                f"--num_processes {procs} is the total over machines: a multiple of --num_machines {machines}"
            )
        if rank is not None and not 0 <= rank < machines:
            raise HoidataError(f"--machine_rank {rank} is outside 0..{machines - 1}")
        if machines > 1 and not args.main_process_ip:
            raise HoidataError(f"--num_machines {machines} needs --main_process_ip")
    if args.main_process_port is not None and not 0 < args.main_process_port < 65536:
        raise HoidataError(f"--main_process_port {args.main_process_port} is not a port")
    return args


def _check_int(name: str, value: Any, *, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HoidataError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in {low}..{high}" if high is not None else f">= {low}"
        raise HoidataError(f"{name} must be {bound}, got {value}")
