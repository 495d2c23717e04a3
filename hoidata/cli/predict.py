"""``hoidata predict``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.generate import engine_gpus, run_data_parallel
from hoidata.cli.options import RunOptions, failed_rows, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.engines.options import EngineOptions
from hoidata.io import ProfileSpec, read_manifest
from hoidata.pipelines.predict import PredictConfig, predict
from hoidata.pipelines.predict_sft import predict_questions, with_spatial_linking

app = new_app()


@app.command(
    epilog=examples(
        "hoidata predict data/hico-test --engine vllm --model runs/grpo --tp 4 --profile qwen2.5-vl --out preds/grpo",
        "hoidata predict data/hico-test --engine openai --base-url http://127.0.0.1:8000/v1 --model M --out preds/m",
        "hoidata predict data/hico-test --engine vllm --model runs/grpo-t --tools zoom_in --max-turns 3 --out preds/t",
        "hoidata eval hico preds/grpo --gt data/hico-test",
    )
)
@with_config_options(gpus=engine_gpus)
def predict_command(
    input_dir: InputDir, out: Out, cfg: PredictConfig, engine: EngineOptions, run: RunOptions
) -> None:
    """Ask a model for every HOI in every image; write predictions for eval.

    Predictions of a canonical dataset (convert or boxes) for `hoidata eval hico`; of an SFT dataset
    (build-sft: each sample's question) for `hoidata eval grounding|referring`. A run with a
    spatial-linking module answers with it (--engine hf).
    """
    if engine.dp > 1 and (run.overwrite or not failed_rows(out)):  # a retry runs here, in one process
        run_data_parallel(cfg.engine, engine, run, input_dir, out)
        return
    profile = cfg.resolved_profile()
    spec = ProfileSpec(profile.name, profile.min_pixels, profile.max_pixels)
    factory = engine.factory(cfg.engine, cfg.model, spec, seed=cfg.seed)
    factory = with_spatial_linking(factory, cfg.engine, cfg.model, profile)
    ask = predict_questions if read_manifest(input_dir).stage == "build-sft" else predict
    manifest = ask(input_dir, out, cfg, factory, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
