"""The dataset card: YAML front matter written by the libraries' own serialisers (``configs`` whose globs
select the shards, ``dataset_info`` with Features and counts), then the counts, each directory's
provenance and config, and the rendered examples."""

from __future__ import annotations

from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from hoidata import __version__
from hoidata.publish.examples import CONVERSATION_COLUMNS, Example, fence
from hoidata.publish.shards import SplitStats
from hoidata.publish.sizes import human_size
from hoidata.publish.source import Source

# the Hub's ``size_categories`` values, by upper bound on the number of rows
SIZE_CATEGORIES = [
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
]


def size_category(n: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if n < bound), "n>1T")


def card_data(
    feats: dict[str, Any], stats: list[SplitStats], repo_id: str | None, license: str | None, tasks: list[str]
) -> DatasetCardData:
    """The card's metadata, ``configs`` and ``dataset_info`` filled in by `datasets` itself, so the Hub
    and `load_dataset` read them back."""
    import datasets
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs

    data = DatasetCardData(
        license=license,
        task_categories=tasks or None,
        tags=["human-object-interaction", "hoidata"],
        size_categories=[size_category(sum(s.rows for s in stats))],
        pretty_name=repo_id.split("/")[-1] if repo_id else None,
    )
    configs = {
        "default": {
            "data_files": [{"split": s.name, "path": f"data/{s.name}-*"} for s in stats],
            "default": True,
        }
    }
    MetadataConfigs(configs).to_dataset_card_data(data)
    info = datasets.DatasetInfo(
        features=datasets.Features.from_dict(feats),
        splits=datasets.SplitDict(
            {s.name: datasets.SplitInfo(s.name, num_bytes=s.num_bytes, num_examples=s.rows) for s in stats}
        ),
        download_size=sum(f.stat().st_size for s in stats for f in s.files),
        dataset_size=sum(s.num_bytes for s in stats),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data


def dataset_card(
    sources: list[Source],
    manifest_names: list[str],
    stats: list[SplitStats],
    feats: dict[str, Any],
    examples: list[Example],
    repo_id: str | None,
    license: str | None,
) -> DatasetCard:
    """The README.md of the repository tree, as the Hub parses it."""
    columns = set(feats)
    tasks = []
    if "instances" in columns:
        tasks.append("object-detection")
    if columns & set(CONVERSATION_COLUMNS):
        tasks.append("image-text-to-text")
    data = card_data(feats, stats, repo_id, license, tasks)
    body = _body(sources, manifest_names, stats, examples, repo_id)
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _body(
    sources: list[Source],
    manifest_names: list[str],
    stats: list[SplitStats],
    examples: list[Example],
    repo_id: str | None,
) -> str:
    """The card's Markdown after the front matter."""
    title = repo_id.split("/")[-1] if repo_id else "hoidata dataset"
    load_name = repo_id or "path/to/this/folder"
    lines = [
        f"# {title}",
        "",
        f"Human-object-interaction data made with hoidata {__version__}. Images are embedded in the"
        " Parquet shards (each file's original bytes, not re-encoded); an image's `path` keeps its"
        " file name relative to the original image root.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{load_name}")',
        "```",
        "",
        "## Splits",
        "",
        "| split | rows | shards | size |",
        "|---|---:|---:|---:|",
    ]
    for s in stats:
        size = sum(f.stat().st_size for f in s.files)
        lines.append(f"| {s.name} | {s.rows:,} | {len(s.files)} | {human_size(size)} |")
    lines += ["", "## Provenance", ""]
    for src, manifest_name in zip(sources, manifest_names, strict=True):
        m = src.manifest
        c = m.counts
        lines += [
            f"### {', '.join(src.splits)}: stage `{m.stage}`",
            "",
            f"- made by hoidata {m.version} on {m.created or 'an unknown date'}; published with hoidata "
            f"{__version__}",
            f"- records: {c.get('in', 0):,} in → {c.get('out', 0):,} out, {c.get('rejected', 0):,} rejected"
            + (f" ({c['rows']:,} rows)" if "rows" in c else "")
            + "; rejects (with reasons) stay in the dataset directory's `rejects.parquet`",
            f"- input fingerprint: `{m.input_fingerprint}`",
            f"- full manifest: [`{manifest_name}`]({manifest_name})",
            "",
            "Config:",
            "",
            fence(yaml.safe_dump(m.config, sort_keys=False, allow_unicode=True).rstrip("\n"), "yaml"),
            "",
        ]
    if examples:
        lines += ["## Examples", ""]
        for ex in examples:
            lines += [f"![{ex.image}](assets/{ex.image})", "", ex.caption, ""]
    return "\n".join(lines).rstrip("\n") + "\n"
