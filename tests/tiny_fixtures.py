"""Session fixtures for tiny offline Qwen-VL checkpoints (imported by conftest).

Building one takes well under a second, but several test modules load them, so each family is
built once per session (per xdist worker) into a temporary directory and reused read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

TinyVLM = Callable[[str], Path]


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> TinyVLM:
    """``tiny_vlm("qwen2.5-vl")`` → directory of a tiny random checkpoint with the default pixel budget.

    Treat the directory as read-only: it is shared by every test of the session.
    """
    from hoidata.models.tiny import build_tiny_vlm  # needs the train extra, which `make test` installs

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_vlm(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return built[family]

    return get


def scripted_generate(tokenizer: Any, next_text: Callable[[Any], str]) -> Callable[..., Any]:
    """A ``model.generate`` that appends ``next_text(prompt_ids)`` to every prompt: a random tiny
    model never calls a tool, so tool loops are scripted (as TRL's own tests do)."""
    import torch

    def generate(input_ids: torch.Tensor, **_: Any) -> torch.Tensor:
        rows = [torch.cat([r, torch.tensor(tokenizer(next_text(r))["input_ids"])]) for r in input_ids]
        width = max(len(r) for r in rows)
        pad = tokenizer.pad_token_id
        return torch.stack([torch.nn.functional.pad(r, (0, width - len(r)), value=pad) for r in rows])

    return generate


def cpu_grpo_config(output_dir: Path, **overrides: Any) -> Any:
    """A GRPOConfig for a few CPU steps with two generations per prompt and no reference model."""
    from trl import GRPOConfig

    args: dict[str, Any] = {
        "output_dir": str(output_dir),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "num_generations": 2,
        "max_completion_length": 256,
        "beta": 0.0,
        "bf16": False,
        "activation_checkpointing": False,
        "use_cpu": True,
        "report_to": [],
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    return GRPOConfig(**{**args, **overrides})


@contextmanager
def transformers_serve(model: Path) -> Iterator[str]:
    """A real ``transformers serve`` of ``model`` on 127.0.0.1; yields its ``/v1`` base URL."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).parent / "transformers"
    proc = subprocess.Popen(
        [str(cli), "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # readiness poll: the server takes a few seconds to import and bind
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("transformers serve did not start")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
