"""``hoidata imagine``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.generate import run_in_processes
from hoidata.cli.options import RunOptions, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.pipelines.imagine import ImagineConfig, imagine

app = new_app()


def pipeline_gpus(configs: list[object]) -> int:
    """A worker's GPUs (``--dp``, Ray, Slurm): one for a diffusers pipeline on CUDA, else none."""
    cfg = next(c for c in configs if isinstance(c, ImagineConfig))
    return 1 if cfg.backend == "diffusers" and cfg.device.startswith("cuda") else 0


@app.command(
    epilog=examples(
        "hoidata imagine data/hico-train -o data/imagine-ctx",
        "hoidata imagine data/hico-train --backend diffusers --model stabilityai/stable-diffusion-2-inpainting "
        "--device cuda --dp 8 -o data/imagine-sd",
        "hoidata imagine data/hico-train --backend http --url http://127.0.0.1:8080/imagine --regions union "
        "-o data/imagine-bagel",
        "hoidata gen-cot data/hico-boxes --imagine-cache data/imagine-sd --engine vllm --model M -o data/cot",
    )
)
@with_config_options(gpus=pipeline_gpus)
def imagine_command(input_dir: InputDir, out: Out, cfg: ImagineConfig, run: RunOptions) -> None:
    """Imagine views of a dataset's regions ahead of time: a cache the imagine tool serves.

    Regions cut by the image border, too small to read, or every pair's union box; views from a
    diffusers inpainting pipeline, an HTTP service or plain context crops. Rerun to resume.
    """
    if cfg.dp > 1:
        run_in_processes(cfg.dp, pipeline_gpus([cfg]), run, input_dir, out)
        return
    manifest = imagine(input_dir, out, cfg, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
