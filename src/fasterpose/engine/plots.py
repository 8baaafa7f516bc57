"""Training curves: loss and validation AP per epoch, as one PNG (matplotlib's Agg backend, optional)."""

from __future__ import annotations

import logging
import os
from typing import Any

from ..io_utils import atomic_path

logger = logging.getLogger(__name__)


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> bool:
    """Plot training loss and the validation metric (AP or PCKh Mean) against epochs.

    Args:
        history: per-epoch records (``epoch``, ``loss`` and, when validated, ``AP`` or ``Mean``).
        path: PNG to write (atomically).

    Returns:
        Whether the file was written (``False`` with a warning when matplotlib is not installed).
    """
    if not history:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: skipping %s (pip install 'fasterpose[plot]')", path)
        return False
    metric = "AP" if any("AP" in r for r in history) else "Mean"
    fig, ax_loss = plt.subplots(figsize=(7, 4), dpi=100)
    ax_loss.plot([r["epoch"] for r in history], [r["loss"] for r in history], "o-", color="tab:blue", markersize=3,
                 label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train loss", color="tab:blue")
    ax_loss.set_yscale("log")
    val = [r for r in history if metric in r]
    if val:
        ax_ap = ax_loss.twinx()
        ax_ap.plot([r["epoch"] for r in val], [r[metric] for r in val], "o-", color="tab:orange", markersize=3,
                   label=f"val {metric}")
        ax_ap.set_ylabel(f"val {metric}", color="tab:orange")
    ax_loss.set_title("training curves")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True
