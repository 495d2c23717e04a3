"""``hoidata gen-prefs``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.generate import engine_gpus, run_data_parallel
from hoidata.cli.options import RunOptions, failed_rows, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.engines.options import EngineOptions
from hoidata.errors import HoidataError
from hoidata.io import read_manifest
from hoidata.pipelines.gen_prefs import GenPrefsConfig, gen_prefs

app = new_app()


@app.command(
    epilog=examples(
        "hoidata build-sft box-answer data/hico-train-boxes -o data/box-answer",
        "hoidata gen-prefs data/box-answer --engine vllm --model runs/warmup --tp 2 -o data/prefs",
        "hoidata gen-prefs data/box-answer --engine hf --model runs/warmup --judge llm --judge-model M "
        "--judge-base-url http://127.0.0.1:8001/v1 -o data/prefs",
        "hoidata gen-prefs data/box-answer --engine vllm --model runs/warmup --tp 2 --dp 4 -o data/prefs",
        "hoidata filter box-prefs data/prefs -o data/dpo-boxes",
        "hoidata filter answer-prefs data/prefs -o data/dpo-answers",
    )
)
@with_config_options(gpus=engine_gpus)
def gen_prefs_command(
    input_dir: InputDir, out: Out, cfg: GenPrefsConfig, engine: EngineOptions, run: RunOptions
) -> None:
    """Sample boxes, crops and answers from a box-then-answer policy, judged: preferences for DPO.

    Rerun the same command to resume an interrupted run.
    """
    if engine.dp > 1 and (run.overwrite or not failed_rows(out)):  # a retry runs here, in one process
        run_data_parallel(cfg.engine, engine, run, input_dir, out)
        return
    spec = read_manifest(input_dir).profile_spec
    factory = engine.factory(cfg.engine, cfg.model, spec, seed=cfg.seed)
    judge = None
    if cfg.judge == "llm":
        if not cfg.judge_model or not cfg.judge_base_url:
            raise HoidataError("--judge llm needs --judge-model and --judge-base-url")
        judge = EngineOptions(base_url=cfg.judge_base_url, api_key=engine.api_key).factory(
            "openai", cfg.judge_model, None
        )
    manifest = gen_prefs(
        input_dir, out, cfg, factory, judge=judge, overwrite=run.overwrite, shard=run.shard_spec
    )
    print_summary(manifest, out, shard=run.shard)
