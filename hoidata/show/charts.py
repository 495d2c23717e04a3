"""Report charts drawn with matplotlib (an optional dependency, imported only here and only when a
report is shown): per-class AP by group, the worst classes, precision-recall curves, and the plain
line and bar charts of the answer evaluations. Each writes one PNG and returns its path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

GROUP_COLOURS = {
    "rare": "#e07b00",
    "non-rare": "#2878e6",
    "unseen": "#7a55c8",
    "novel": "#7a55c8",
    "all": "#333333",
}
DPI = 110


def available() -> bool:
    """True when matplotlib can be imported (``pip install matplotlib`` otherwise)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float = 8.0, height: float = 4.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def ap_by_group(groups: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Each group's per-class AP, sorted from best to worst, against the share of its classes;
    the group's mean as a dashed line. Where a group's curve drops to 0 is where it stops working."""
    fig, ax = _figure()
    for name, ap in groups.items():
        if not len(ap):
            continue
        colour = GROUP_COLOURS.get(name)
        x = (np.arange(len(ap)) + 0.5) / len(ap)
        label = f"{name}: {len(ap)} classes, mean {100 * float(np.mean(ap)):.1f}"
        ax.plot(x, 100 * np.sort(ap)[::-1], label=label, color=colour, lw=2)
        ax.axhline(100 * float(np.mean(ap)), color=colour, ls="--", lw=1)
    ax.set_xlabel("share of the group's classes, best AP first")
    ax.set_ylabel("AP %")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def worst_classes(names: Sequence[str], ap: np.ndarray, npos: np.ndarray, path: Path, title: str) -> Path:
    """Horizontal bars of the given classes' AP (worst at the top), with their ground-truth counts."""
    fig, ax = _figure(8.0, max(2.5, 0.28 * len(names) + 1.2))
    y = np.arange(len(names))[::-1]
    ax.barh(y, 100 * np.asarray(ap), color="#e03c3c")
    ax.set_yticks(y, [f"{n} ({int(c)})" for n, c in zip(names, npos, strict=True)], fontsize=9)
    ax.set_xlabel("AP % (ground-truth pairs in brackets)")
    ax.set_xlim(0, 100)
    ax.set_title(title)
    return _save(fig, path)


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    fig, ax = _figure(8.0, 4.8)
    for name, (recall, precision) in curves.items():  # from recall 0 at the first precision
        ax.step(np.r_[0.0, recall], np.r_[precision[:1], precision], where="post", label=name, lw=1.6)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    if curves:
        ax.legend(fontsize=8)
    return _save(fig, path)


def lines(
    x: Sequence[float],
    series: dict[str, Sequence[float | None]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    fig, ax = _figure()
    for name, ys in series.items():
        ax.plot(x, [np.nan if v is None else 100 * v for v in ys], marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    return _save(fig, path)


def bars(
    labels: Sequence[str], values: Sequence[float | None], path: Path, *, title: str, xlabel: str
) -> Path:
    """Horizontal bars, in the given order from the top, values as fractions shown in percent."""
    fig, ax = _figure(8.0, max(2.5, 0.28 * len(labels) + 1.2))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, [0 if v is None else 100 * v for v in values], color="#2878e6")
    ax.set_yticks(y, list(labels), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, 100)
    ax.set_title(title)
    return _save(fig, path)
