"""The report's figures, each a PNG with a one-line caption saying what it shows.

Every figure is drawn from the run directories (and, for the pictures of
what the networks see, a few test images of the study's data, kept in
figures/samples.npz so the report can be rebuilt without the data):

    curves           validation and training accuracy and cross-entropy per epoch, every
                     arm on shared axes (means over seeds)
    per_class        test accuracy per class, one bar per arm (means over seeds)
    confusion        the best arm's test confusion matrix, summed over its seeds
    receptive_field  field size against depth (`kerascnn.analysis.receptive_field`)
    filters          first-layer filters of each arm's first seed (`kerascnn.analysis.visualize`)
    feature_maps     per-block feature maps of one test image, each arm's first seed
    gradcam          Grad-CAM maps (Selvaraju et al. 2017, `kerascnn.analysis.gradcam`)
                     of every arm for the same test images
    memory           ESTIMATED training memory against batch size (`kerascnn.analysis.memory`),
                     with the accelerator sizes of the report's memory table
"""

import dataclasses
import pathlib

import numpy as np

from kerascnn.storage.atomic import save_figure
from kerascnn.studies import results as study_results

FIGURES = "figures"
SAMPLES = "samples.npz"
SAMPLE_IMAGES = 4
FEATURE_CHANNELS = 8


@dataclasses.dataclass(frozen=True)
class Figure:
    """A figure of the report: `id` (HTML anchor), the PNG, its one-line caption."""

    id: str
    path: pathlib.Path
    caption: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(summaries, path):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    validated = False
    for i, s in enumerate(summaries):
        history = study_results.mean_history(s.runs)
        if not history:
            continue
        colour = colours[i % len(colours)]
        epochs = [int(r["epoch"]) + 1 for r in history]
        has_val = any(r.get("val_accuracy") is not None for r in history)
        validated |= has_val
        if has_val:
            axes[0].plot(epochs, [r.get("val_accuracy") for r in history], "-", color=colour, marker="o",
                         markersize=3, label=f"{s.label} validation")
        axes[0].plot(epochs, [r.get("accuracy") for r in history], ":", color=colour, marker="o", markersize=3,
                     label=f"{s.label} train")
        key = "val_cross_entropy" if has_val else "cross_entropy"
        axes[1].plot(epochs, [r.get(key) for r in history], "-", color=colour, marker="o", markersize=3,
                     label=s.label + ("" if has_val else " (train)"))
    axes[0].set_ylabel("accuracy (solid: validation, dotted: train)")
    axes[1].set_ylabel("validation cross-entropy" if validated else "training cross-entropy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return Figure("curves", path, "Learning curves of every arm on shared axes: accuracy (validation solid, "
                  "training dotted) and cross-entropy per epoch, means over seeds.")


def per_class(summaries, path):
    plt = _pyplot()
    tables = [(s, study_results.per_class_means(s.runs)) for s in summaries]
    tables = [(s, t) for s, t in tables if t]
    classes = list(tables[0][1]) if tables else []
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(classes) + 2), 4.2))
    width = 0.8 / max(len(tables), 1)
    for i, (s, table) in enumerate(tables):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(classes))]
        ax.bar(xs, [table.get(c) or 0.0 for c in classes], width=width * 0.95, label=s.label)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy of the class")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return Figure("per-class", path, "Test accuracy of each class for every arm (the fraction of the class's test "
                  "images classified correctly), means over seeds.")


def confusion(summary, path):
    from kerascnn.analysis.confusion import plot_confusion

    counts = study_results.summed_confusion(summary.runs)
    names = summary.runs[0].class_names or tuple(str(i) for i in range(len(counts)))
    plot_confusion(counts, names, path, title=summary.label)
    seeds = f"summed over {summary.seeds} seeds" if summary.seeds > 1 else "one seed"
    return Figure("confusion", path, f"Confusion matrix of the best arm, {summary.label}, on the test set ({seeds}): "
                  "rows are true classes, columns predictions, shaded by the fraction of the row.")


def receptive_field(summaries, path):
    """The figure and [(label, last map, field size, image side)] for the findings."""
    import keras

    from kerascnn.analysis.build import build_model
    from kerascnn.analysis.receptive_field import last_spatial, plot_fields, receptive_fields

    named, facts, seen = [], [], set()
    for s in summaries:
        config = s.runs[0].config
        shape = tuple((config.get("resolved") or {}).get("image_shape") or (32, 32, 3))
        key = (config["model"], repr(sorted(config.get("model_options", {}).items())), shape)
        if key in seen:
            continue
        seen.add(key)
        options = {k: v for k, v in config.get("model_options", {}).items() if k not in ("logit_scale",)}
        model = build_model(config["model"], shape, None, include_top=False, **options)
        rows = receptive_fields(model)
        named.append((s.label, rows))
        last = last_spatial(rows)
        if last is not None:
            facts.append((s.label, last.name, max(last.size), max(shape[:2])))
        keras.backend.clear_session()
    plot_fields(named, path)
    return Figure("receptive-field", path, "Receptive field (input pixels one unit sees) against depth, counting "
                  "convolutions and poolings, for each arm's network at its input size."), facts


def _unit(a):
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _mosaic(tiles, columns, gap=1):
    """Tiles [N, h, w, 3] in [0, 1] as one image, `columns` wide, white lines between them."""
    n, h, w, c = tiles.shape
    rows = -(-n // columns)
    canvas = np.ones((rows * (h + gap) + gap, columns * (w + gap) + gap, c), np.float32)
    for i, tile in enumerate(tiles):
        r, k = divmod(i, columns)
        canvas[gap + r * (h + gap): gap + r * (h + gap) + h, gap + k * (w + gap): gap + k * (w + gap) + w] = tile
    return canvas


def filters(summary, loaded, path):
    """The first convolution's kernels as one mosaic (colour when they read RGB), each min-max scaled.

    One image rather than a subplot per filter: AlexNet's 96 subplots took
    seconds to draw; the picture is the same (Krizhevsky et al. 2012, Figure 3).
    """
    import keras

    from kerascnn.analysis.visualize import MAX_FILTERS, first_convolution

    plt = _pyplot()
    layer = first_convolution(loaded.model)
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float32)  # (kh, kw, in, out)
    kh, kw, cin, cout = kernel.shape
    n = min(cout, MAX_FILTERS)
    tiles = []
    for i in range(n):
        k = kernel[..., i]
        tiles.append(_unit(k) if cin == 3 else np.repeat(_unit(k.mean(axis=-1))[..., None], 3, axis=-1))
    columns = int(np.ceil(np.sqrt(n)))
    mosaic = _mosaic(np.stack(tiles), columns)
    fig, ax = plt.subplots(figsize=(min(0.45 * columns + 1.5, 9), min(0.45 * columns + 1.5, 9) * mosaic.shape[0]
                                    / mosaic.shape[1] + 0.4))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{summary.label}: {layer.name}, {n} of {cout} filters, {kh}x{kw}x{cin}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return Figure(f"filters-{summary.name}", path,
                  f"First-layer filters of {summary.label} after training ({layer.name}, seed "
                  f"{summary.runs[0].seed}), each scaled to its own range.")


def feature_maps(summary, loaded, image, path):
    """One row per block output (`visualize.block_outputs`): the image, then its most active channels.

    Each row is one mosaic (every map scaled to its own range and enlarged to
    a common size, nearest neighbour), so the figure has one axis per block.
    """
    import keras

    from kerascnn.analysis.visualize import block_outputs

    plt = _pyplot()
    names = block_outputs(loaded.model)
    probe = keras.Model(loaded.model.inputs, [loaded.model.get_layer(n).output for n in names])
    outputs = probe(loaded.preprocessing(np.asarray(image)[None]), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    outputs = [keras.ops.convert_to_numpy(m)[0].astype(np.float32) for m in outputs]
    side = max(32, *(max(m.shape[:2]) for m in outputs))  # enlarge small maps, never crop a large one
    picture = np.asarray(
        keras.ops.convert_to_numpy(keras.ops.image.resize(np.asarray(image, np.float32)[None], (side, side),
                                                          interpolation="nearest"))[0] / 255.0, np.float32)
    fig, axes = plt.subplots(len(names), 1, figsize=(1.0 * (FEATURE_CHANNELS + 1) + 2.2, 1.05 * len(names) + 0.6),
                             squeeze=False)
    for ax, name, maps in zip(axes[:, 0], names, outputs):
        order = np.argsort(-maps.mean(axis=(0, 1)))[:FEATURE_CHANNELS]
        reps = (-(-side // maps.shape[0]), -(-side // maps.shape[1]))
        tiles = [picture]
        for c in order:
            big = np.kron(_unit(maps[..., c]), np.ones(reps, np.float32))[:side, :side]
            tile = np.ones((side, side, 3), np.float32)
            tile[:big.shape[0], :big.shape[1]] = plt.get_cmap("viridis")(big)[..., :3]
            tiles.append(tile)
        ax.imshow(_mosaic(np.stack(tiles), len(tiles)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"{name}\n{maps.shape[0]}x{maps.shape[1]}x{maps.shape[2]}", fontsize=6, rotation=0,
                      ha="right", va="center")
    fig.suptitle(f"{summary.label}: one test image (left) and its feature maps", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return Figure(f"feature-maps-{summary.name}", path,
                  f"Feature maps of {summary.label} for one test image after each block (rows), its "
                  f"{FEATURE_CHANNELS} most active channels each scaled to its own range.")


def gradcam(summaries, loaded, images, labels, class_names, path):
    from kerascnn.analysis.gradcam import grad_cam, plot_grad_cam, target_layer, upsample

    rows, layers = [], []
    for s in summaries:
        model = loaded[s.name]
        layer = target_layer(model.model)
        maps, _, predicted = grad_cam(model.model, model.preprocessing(images), layer)
        rows.append((f"{s.label}\n({layer})", upsample(maps, images.shape[1:3]), predicted))
        layers.append(layer)
    plot_grad_cam(rows, images, path, title="Grad-CAM for the predicted class", class_names=class_names,
                  labels=labels)
    return Figure("gradcam", path, f"Grad-CAM (Selvaraju et al. 2017) of each arm for the same {len(images)} test "
                  "images: where the last convolutional map raises the predicted class's score (red: most).")


def memory(estimates, path):
    """M(b) of each arm (`kerascnn.studies.memory.arm_estimates`) on log-2 axes, a dashed line per card size."""
    from kerascnn.analysis.memory import GIB, GPU_GIB

    plt = _pyplot()
    largest = max([e.max_batch(max(GPU_GIB) * GIB) for _, e in estimates] + [1024])
    batches = [2 ** k for k in range(0, largest.bit_length() + 1)]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for s, e in estimates:
        ax.plot(batches, [e.bytes(b) / GIB for b in batches], "-", marker="o", markersize=3, label=s.label)
    for g in GPU_GIB:
        ax.axhline(g, color="0.5", linestyle="--", linewidth=0.8)
        ax.annotate(f"{g} GB", (batches[0], g), xytext=(2, 2), textcoords="offset points", fontsize=7, color="0.3")
    trained = sorted({(s.runs[0].config.get("resolved") or {}).get("batch_size") for s, _ in estimates} - {None})
    for b in trained:  # where the study's own runs sit on the curves
        ax.axvline(b, color="0.3", linestyle=":", linewidth=0.8)
        ax.annotate(f"batch {b} (the runs')", (b, 1), xycoords=("data", "axes fraction"), xytext=(3, -10),
                    textcoords="offset points", fontsize=7, color="0.3")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("batch size (log 2)")
    ax.set_ylabel("estimated training memory (GiB, log 2)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
    return Figure("memory", path, "Estimated (not measured) training memory against batch size of each arm, "
                  "M(b) = 4 B x (P + T x (1 + s)) + 1 GiB + b x 2 x A as in the memory table, with the 8 to 80 GB "
                  "cards as dashed lines.")


# --- test images ------------------------------------------------------------------


def _read_samples(cache):
    """(images, labels, class names) of the samples cache; None when there is none or it cannot be read.

    It is a cache: a damaged one is made again from the data (the images are the same).
    """
    import io
    import zipfile

    from kerascnn.errors import DataError
    from kerascnn.storage import readback

    try:
        data = readback.read_bytes(cache, missing_ok=True)
        if data is None:
            return None
        with np.load(io.BytesIO(data)) as saved:
            return saved["images"], saved["labels"], tuple(str(c) for c in saved["class_names"])
    except (DataError, OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def test_samples(study_dir, config, count=SAMPLE_IMAGES):
    """(uint8 images [count, H, W, 3], labels, class names) of the study's test split, one per class.

    Read once from the data the runs trained on and kept in figures/samples.npz,
    so `study-report` redraws the figures without the data.
    """
    cache = pathlib.Path(study_dir) / FIGURES / SAMPLES
    saved = _read_samples(cache)
    if saved is not None:
        return saved
    from kerascnn.data.choose_source import open_source

    data = config["data"]
    source = open_source(data.get("dataset"), data.get("data_dir"),
                         tuple(data["image_size"]) if data.get("image_size") else None,
                         data.get("skip_bad_images", False), log=None)
    images, labels = [], []
    for image, label in source.test_examples().take(5000).as_numpy_iterator():
        if int(label) not in labels:
            images.append(image)
            labels.append(int(label))
        if len(images) == count:
            break
    images, labels = np.stack(images), np.array(labels)
    class_names = tuple(source.info.class_names)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(".samples.tmp.npz")
    np.savez_compressed(tmp, images=images, labels=labels, class_names=np.array(class_names))
    tmp.replace(cache)
    return images, labels, class_names
