"""The study's questions as PNG plots, from the rows of `tuning.results.collect`.

    accuracy_by_optimizer.png   mean test (and validation) accuracy per
                                optimizer, one bar per regularisation
                                (batch norm / dropout / both / neither)
    accuracy_vs_lr.png          test accuracy against learning rate (log
                                scale), one colour per optimizer
    train_vs_test.png           best train accuracy against test accuracy
                                per trial; far below the diagonal = overfitting
    time_by_batch.png           training time per trial by batch size, one
                                bar per optimizer
    epochs_by_split.png         epochs run (until early stopping) by
                                validation split

Matplotlib's Agg backend (no display needed); each file is written under a
temporary name and renamed, so a reader never sees half a PNG.
"""

import pathlib

from kerascnn.storage.atomic import save_figure

PLOT_NAMES = (
    "accuracy_by_optimizer",
    "accuracy_vs_lr",
    "train_vs_test",
    "time_by_batch",
    "epochs_by_split",
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _grouped_bars(ax, rows, group_key, hue_key, value_key, ylabel):
    groups = sorted({r[group_key] for r in rows}, key=str)
    hues = sorted({r[hue_key] for r in rows}, key=str)
    width = 0.8 / max(len(hues), 1)
    for j, hue in enumerate(hues):
        xs, ys = [], []
        for i, group in enumerate(groups):
            sel = [r[value_key] for r in rows if r[group_key] == group and r[hue_key] == hue]
            mean = _mean(sel)
            if mean is None:
                continue
            x = i - 0.4 + width * (j + 0.5)
            xs.append(x)
            ys.append(mean)
            # Each trial as a dot over its bar: a mean of 1 and of 8 trials look different.
            ax.scatter([x] * len(sel), sel, s=10, color="black", zorder=3)
        ax.bar(xs, ys, width=width * 0.95, label=str(hue))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([str(g) for g in groups])
    ax.set_xlabel(group_key.replace("_", " "))
    ax.set_ylabel(ylabel)
    if hues:
        ax.legend(fontsize=8, title=hue_key.replace("_", " "), title_fontsize=8)


def _empty(ax):
    ax.text(0.5, 0.5, "no completed trials yet", ha="center", va="center", transform=ax.transAxes)


def plot_accuracy_by_optimizer(rows, ax):
    _grouped_bars(ax, rows, "optimizer", "regularization", "test_accuracy", "test accuracy (mean; dots: trials)")
    ax.set_title("Test accuracy by optimizer and regularisation")


def plot_accuracy_vs_lr(rows, ax):
    for opt in sorted({r["optimizer"] for r in rows}):
        sel = sorted((r for r in rows if r["optimizer"] == opt), key=lambda r: r["learning_rate"])
        lrs = [r["learning_rate"] for r in sel]
        ax.scatter(lrs, [r["test_accuracy"] for r in sel], label=opt, s=18)
        by_lr = sorted(set(lrs))
        if len(by_lr) < len(lrs):
            # A grid repeats each rate: join the means per rate, the trend behind the dots.
            means = [_mean([r["test_accuracy"] for r in sel if r["learning_rate"] == lr]) for lr in by_lr]
            ax.plot(by_lr, means)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a short range
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy against learning rate")
    ax.legend(fontsize=8)


def plot_train_vs_test(rows, ax):
    xs = [r["best_train_accuracy"] for r in rows]
    ys = [r["test_accuracy"] for r in rows]
    ax.scatter(xs, ys, s=18)
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(str(r["trial_id"]), (x, y), fontsize=6, alpha=0.7)
    lo = min(xs + ys)
    hi = max(xs + ys)
    ax.plot([lo, hi], [lo, hi], "--", color="grey", label="test = train")
    ax.set_xlabel("best train accuracy")
    ax.set_ylabel("test accuracy (best checkpoint)")
    ax.set_title("Overfitting: train against test accuracy per trial")
    ax.legend(fontsize=8)


def plot_time_by_batch(rows, ax):
    _grouped_bars(ax, rows, "batch_size", "optimizer", "wall_seconds", "training time per trial, s")
    ax.set_title("Training time by batch size and optimizer")


def plot_epochs_by_split(rows, ax):
    splits = sorted({r["val_split"] for r in rows})
    for i, split in enumerate(splits):
        epochs = [r["epochs_run"] for r in rows if r["val_split"] == split]
        ax.scatter([i] * len(epochs), epochs, s=18, alpha=0.6)
        ax.plot([i - 0.25, i + 0.25], [_mean(epochs)] * 2, color="black")
    ax.set_xticks(range(len(splits)))
    ax.set_xticklabels([f"{1 - s:.0%}/{s:.0%}" for s in splits])
    ax.set_xlabel("train / validation split")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("epochs run (bar: mean)")
    ax.set_title("Epochs until early stopping by split")


PLOTTERS = dict(
    zip(
        PLOT_NAMES,
        (plot_accuracy_by_optimizer, plot_accuracy_vs_lr, plot_train_vs_test, plot_time_by_batch, plot_epochs_by_split),
    )
)


def write_plots(done, folder):
    """Write every plot of the completed trials `done` (`tuning.results.completed`) to `folder`; return the paths."""
    plt = _pyplot()
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, plot in PLOTTERS.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        try:
            if done:
                plot(done, ax)
            else:
                _empty(ax)
            path = folder / f"{name}.png"
            fig.tight_layout()
            save_figure(fig, path, dpi=110)
            paths.append(path)
        finally:
            plt.close(fig)
    return paths
