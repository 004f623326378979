"""Confusion matrix and per-class accuracy of a model on a test set.

C[i, j] counts the test images of true class i predicted as class j
(argmax of the logits); the accuracy of class i is C[i, i] / sum_j C[i, j]
(its recall), and the overall accuracy is trace(C) / sum(C). Written into a
run directory by `fit`:

    confusion_matrix.png     the matrix, rows normalised to fractions of each class
    confusion_matrix.csv     the counts, true class per row, predicted per column
    per_class_accuracy.csv   class, images, correct, accuracy
"""

import csv
import io

import numpy as np
import tensorflow as tf

from kerascnn.data.pipeline import any_batch_spec
from kerascnn.storage.atomic import save_figure, write_text
from kerascnn.storage.rundir import CONFUSION_CSV, CONFUSION_PNG, PER_CLASS_CSV
# Above this many classes the cells are too small to print their values.
ANNOTATE_UP_TO = 20


def confusion_matrix(model, dataset, num_classes):
    """Counts [num_classes, num_classes] over a batched dataset of (images, one-hot labels)."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    # A plain compiled forward pass, not predict_on_batch: under a
    # multi-worker strategy predict is a collective op (it gathers every
    # worker's batch), which only the chief runs here.
    # The batch axis left unknown: the short last batch is not a second trace.
    forward = tf.function(
        lambda x: model(x, training=False), input_signature=[any_batch_spec(dataset.element_spec[0])]
    )
    for images, labels in dataset:
        logits = forward(images)
        if isinstance(logits, (list, tuple)):  # auxiliary heads: the main one is first
            logits = logits[0]
        predicted = np.argmax(np.asarray(logits), axis=-1)
        labels = np.asarray(labels)
        true = np.argmax(labels, axis=-1) if labels.ndim > 1 else labels.astype(np.int64)
        np.add.at(counts, (true, predicted), 1)
    return counts


def per_class_accuracy(counts, class_names):
    """[{class, images, correct, accuracy}] (accuracy None for a class with no test image)."""
    rows = []
    for i, name in enumerate(class_names):
        total = int(counts[i].sum())
        correct = int(counts[i, i])
        rows.append({"class": name, "images": total, "correct": correct,
                     "accuracy": correct / total if total else None})
    return rows


def plot_confusion(counts, class_names, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
    size = min(max(4.0, 0.45 * n + 2), 20)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= ANNOTATE_UP_TO:
        ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), class_names, fontsize=8)
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if fractions[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.4f} on {int(counts.sum())} images")
    fig.tight_layout()
    return save_figure(fig, path)


def _csv(header, rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_class_report(model, test_dataset, class_names, run_dir, title=""):
    """Write confusion_matrix.png/.csv and per_class_accuracy.csv into `run_dir`.

    Returns {"confusion_matrix": counts as lists, "per_class_accuracy": {class: accuracy}}.
    """
    counts = confusion_matrix(model, test_dataset, len(class_names))
    return write_class_report_from_counts(counts, class_names, run_dir, title)


def write_class_report_from_counts(counts, class_names, run_dir, title=""):
    """`write_class_report` for confusion counts already measured (`fit` counts them in its test pass)."""
    import pathlib

    run_dir = pathlib.Path(run_dir)
    class_names = [str(c) for c in class_names]
    counts = np.asarray(counts)
    rows = per_class_accuracy(counts, class_names)
    write_text(run_dir / CONFUSION_CSV,
               _csv(["true \\ predicted", *class_names],
                    [[name, *map(int, counts[i])] for i, name in enumerate(class_names)]))
    write_text(run_dir / PER_CLASS_CSV,
               _csv(["class", "images", "correct", "accuracy"],
                    [[r["class"], r["images"], r["correct"], "" if r["accuracy"] is None else f"{r['accuracy']:.6f}"]
                     for r in rows]))
    plot_confusion(counts, class_names, run_dir / CONFUSION_PNG, title)
    return {
        "confusion_matrix": counts.tolist(),
        "per_class_accuracy": {r["class"]: r["accuracy"] for r in rows},
    }
