"""Referring: does the model name the right verbs for a given (person, object) pair?

A referring sample asks what one person does with one object; its ground truth is the set of
distinct verbs of its ``pairs`` (taxonomy spelling). The answer is read with
:func:`~hoidata.profiles.answers.parse_verbs`, the reader the rewards use, so both agree on what an
answer says. Normalisation: the last ``<answer>`` block (else the whole text) is split on commas,
semicolons, newlines, ``/``, ``|`` and the words "and" / "or"; each part loses surrounding quotes,
brackets and punctuation (``.!?:*-``), is lowercased, and its inner whitespace becomes ``_``
(``"Sports ball"`` → ``sports_ball``); repeats count once, so order and duplicates never matter.

Reported, each over the evaluated samples:

* exact match — the normalised predicted set equals the ground-truth set;
* micro precision / recall / F1 — true positives, predicted verbs and ground-truth verbs pooled
  over samples (also per verb, in the JSON report);
* mean per-sample F1 — ``2·TP / (|pred| + |gt|)`` per sample (1 when both are empty), averaged;
* macro F1 — the mean of per-verb F1 over verbs that occur in the ground truth;
* BERTScore (optional) — only when the ``bert_score`` package is installed and a local model is
  given; nothing is downloaded. Candidates are the answer texts, references the dataset's own
  answers. Without either, the report says it was skipped and why.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.errors import HoidataError
from hoidata.eval.completions import join_completions
from hoidata.eval.report import Report, count_lines, percent, summary_rows
from hoidata.profiles.answers import answer_body, parse_verbs
from hoidata.rewards.targets import VERB_TASKS, Targets

BERTSCORE_NEEDS = (
    "BERTScore not computed: it needs the bert_score package and a local model "
    "(--bertscore-model PATH); nothing is downloaded"
)


@dataclass
class ReferringReport(Report):
    """Exact match, verb precision/recall/F1 (micro, macro, per sample), per-verb counts, BERTScore."""

    summary: dict[str, float | None]  # exact_match, precision, recall, f1, mean_f1, macro_f1
    verbs: list[dict[str, Any]]  # verb, gt, predicted, tp, precision, recall, f1
    counts: dict[str, int]
    unmatched_samples: list[str]
    bertscore: dict[str, Any] | None = None  # model, layers, precision, recall, f1 (means)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "metric": "referring",
            "normalisation": "parse_verbs: split on , ; newline / | and/or; strip quotes, brackets and "
            "punctuation; lowercase; whitespace to _; distinct verbs, order-free",
        }

    def format_table(self) -> str:
        """The console summary, in percent."""
        lines = ["Referring — verb sets (normalised, order-free)", f"  {'metric':<16}{'%':>10}"]
        labels = [("exact match", "exact_match"), ("precision", "precision"), ("recall", "recall")]
        labels += [("F1 (micro)", "f1"), ("F1 (per sample)", "mean_f1"), ("F1 (macro)", "macro_f1")]
        lines += summary_rows(self.summary, labels, 16)
        if self.bertscore is not None:
            lines.append(f"  {'BERTScore F1':<16}{percent(self.bertscore['f1'])}")
        lines.extend(count_lines(self.counts, self.unmatched_samples))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _ratio(a: float, b: float) -> float | None:
    """``a / b`` as a plain float (JSON-safe), None when ``b`` is 0."""
    return float(a / b) if b else None


def evaluate(pred_offsets: np.ndarray, pred_verbs: list[str], gt: Targets) -> ReferringReport:
    """Verb-set metrics of parsed answers (``parse_verbs`` output) against ground truth: no I/O."""
    n = len(gt)
    if len(pred_offsets) != n + 1:
        raise ValueError(f"{len(pred_offsets) - 1} answers for {n} samples")
    both = pa.concat_arrays([pa.array(pred_verbs, pa.string()), gt.verb]).dictionary_encode()
    codes = both.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    vocab = both.dictionary.to_pylist()
    v = max(len(vocab), 1)
    pred_owner = np.repeat(np.arange(n), np.diff(pred_offsets))
    pred_keys = np.unique(pred_owner * v + codes[: len(pred_verbs)])
    gt_keys = np.unique(gt.owner * v + codes[len(pred_verbs) :])
    hit = np.intersect1d(pred_keys, gt_keys, assume_unique=True)
    n_pred = np.bincount(pred_keys // v, minlength=n)
    n_gt = np.bincount(gt_keys // v, minlength=n)
    tp = np.bincount(hit // v, minlength=n)
    exact = (tp == n_pred) & (tp == n_gt)
    total = n_pred + n_gt
    with np.errstate(divide="ignore", invalid="ignore"):
        sample_f1 = np.where(total > 0, 2.0 * tp / total, 1.0)
    verb_pred = np.bincount(pred_keys % v, minlength=len(vocab))
    verb_gt = np.bincount(gt_keys % v, minlength=len(vocab))
    verb_tp = np.bincount(hit % v, minlength=len(vocab))
    verbs = []
    for i in np.argsort(np.array(vocab, dtype=object), kind="stable"):
        f1 = _ratio(2 * int(verb_tp[i]), int(verb_pred[i] + verb_gt[i]))
        verbs.append(
            {
                "verb": vocab[i],
                "gt": int(verb_gt[i]),
                "predicted": int(verb_pred[i]),
                "tp": int(verb_tp[i]),
                "precision": _ratio(verb_tp[i], verb_pred[i]),
                "recall": _ratio(verb_tp[i], verb_gt[i]),
                "f1": f1,
                "in_ground_truth": bool(verb_gt[i] > 0),
            }
        )
    in_gt = [x["f1"] for x in verbs if x["in_ground_truth"]]
    tps, preds, gts = int(tp.sum()), int(n_pred.sum()), int(n_gt.sum())
    summary = {
        "exact_match": float(exact.mean()) if n else None,
        "precision": _ratio(tps, preds),
        "recall": _ratio(tps, gts),
        "f1": _ratio(2 * tps, preds + gts),
        "mean_f1": float(sample_f1.mean()) if n else None,
        "macro_f1": float(np.mean(in_gt)) if in_gt else None,
    }
    unseen = sum(x["predicted"] for x in verbs if not x["in_ground_truth"])
    return ReferringReport(
        summary=summary,
        verbs=verbs,
        counts={
            "gt_verbs": gts,
            "predicted_verbs": preds,
            "predicted_outside_ground_truth": unseen,
            "empty_answers": int((n_pred == 0).sum()),
        },
        unmatched_samples=[],
    )


def bertscore(
    candidates: list[str], references: list[str], model: str, num_layers: int | None, rescale: bool
) -> dict[str, Any]:
    """Mean BERTScore P/R/F1 with a local model; empty candidates score 0 (as bert_score does)."""
    import bert_score

    path = Path(model)
    if not path.exists():
        raise HoidataError("BERTScore model not found (give a local model directory)", file=model)
    p, r, f = bert_score.score(
        candidates,
        references,
        model_type=str(path),
        num_layers=num_layers,
        idf=False,
        lang="en",
        rescale_with_baseline=rescale,
    )
    return {
        "model": str(path),
        "num_layers": num_layers,
        "rescaled": rescale,
        "precision": float(p.mean()),
        "recall": float(r.mean()),
        "f1": float(f.mean()),
    }


def eval_referring(
    completions: Path | str,
    dataset: Path | str,
    *,
    skip_missing: bool = False,
    bertscore_model: str | None = None,
    bertscore_layers: int | None = None,
    bertscore_rescale: bool = False,
) -> ReferringReport:
    """Read completions (JSONL/Parquet ``{sample_id, completion}``) and score the verbs they name
    against the referring (or other verb-answer) samples of an SFT dataset directory."""
    joined = join_completions(
        completions, dataset, VERB_TASKS, ["pairs", "width", "height", "messages"], skip_missing=skip_missing
    )
    targets = Targets.from_arrow(joined.table)
    offsets, verbs = parse_verbs(joined.texts)
    report = evaluate(offsets, verbs, targets)
    empty = int(((np.diff(offsets) == 0) & joined.answered).sum())
    report.counts = joined.counts | report.counts | {"empty_answers": empty}
    report.unmatched_samples = joined.unmatched_samples
    if joined.counts["without_completion"] and not skip_missing:
        report.notes.append(
            f"{joined.counts['without_completion']:,} samples without a completion count as answered "
            "with no verb"
        )
    if bertscore_model is None:
        report.notes.append(BERTSCORE_NEEDS)
    elif importlib.util.find_spec("bert_score") is None:
        report.notes.append(f"{BERTSCORE_NEEDS}; the bert_score package is not installed")
    else:
        references = [_reference(m) for m in joined.table.column("messages").to_pylist()]
        candidates = [answer_body(t).strip() for t in joined.texts]
        report.bertscore = bertscore(
            candidates, references, bertscore_model, bertscore_layers, bertscore_rescale
        )
    report.sources = {"completions": str(completions), "ground_truth": str(dataset)}
    return report


def _reference(messages: list[dict[str, Any]]) -> str:
    """The dataset's own answer: the text of the last assistant message, answer block only."""
    for message in reversed(messages or []):
        if message["role"] == "assistant":
            text = "".join(c["text"] or "" for c in message["content"] or [])
            return answer_body(text).strip()
    return ""
