"""Training curves of a run (curves.png)."""

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from kerascnn.storage.atomic import save_figure  # noqa: E402


def plot_curves(history, path, title=""):
    """Cross-entropy and accuracy per epoch, train vs validation, side by side.

    Cross-entropy is the `cross_entropy` metric (no label smoothing, and no
    weight penalty in runs before 2026-12-07), so train and validation curves
    are comparable.
    """
    epochs = [int(row["epoch"]) + 1 for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "cross_entropy", "cross-entropy"), (axes[1], "accuracy", "accuracy")):
        for prefix, style, name in (("", "-", "train"), ("val_", "--", "validation")):
            values = [row.get(prefix + key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)  # atomic: a killed run never leaves half a PNG
