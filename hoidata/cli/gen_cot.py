"""``hoidata gen-cot``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.generate import engine_gpus, run_data_parallel
from hoidata.cli.options import RunOptions, failed_rows, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.engines.options import EngineOptions
from hoidata.io import read_manifest
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot

app = new_app()


@app.command(
    epilog=examples(
        "hoidata gen-cot data/hico-boxes --engine vllm --model Qwen/Qwen2.5-VL-72B-Instruct --tp 4 --out data/cot",
        "hoidata gen-cot data/hico-boxes --engine openai --model M --base-url http://127.0.0.1:8000/v1 --out data/cot",
        "hoidata gen-cot data/demo/boxes --engine hf --model runs/tiny --n 2 --max-turns 3 --out data/cot",
        "hoidata gen-cot data/hico-boxes --engine openai --model M --base-url URL --shard 1/4 --out data/cot",
        "hoidata gen-cot data/boxes --engine vllm --model M --tp 4 --executor ray --ray-address auto --dp 4 -o cot",
        "hoidata gen-cot data/boxes --engine vllm --model M --tp 8 --executor slurm --dp 2 --dry-run -o data/cot",
    )
)
@with_config_options(gpus=engine_gpus)
def gen_cot_command(
    input_dir: InputDir, out: Out, cfg: GenCotConfig, engine: EngineOptions, run: RunOptions
) -> None:
    """Generate tool-augmented chain-of-thought rollouts, scored with the GRPO rewards.

    Rerun the same command to resume an interrupted run.
    """
    if engine.dp > 1 and (run.overwrite or not failed_rows(out)):  # a retry runs here, in one process
        run_data_parallel(cfg.engine, engine, run, input_dir, out)
        return
    spec = read_manifest(input_dir).profile_spec  # None: gen_cot names what the input lacks
    factory = engine.factory(cfg.engine, cfg.model, spec, seed=cfg.seed, asynchronous=cfg.loop == "async")
    manifest = gen_cot(input_dir, out, cfg, factory, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
