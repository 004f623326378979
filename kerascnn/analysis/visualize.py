"""First-layer filters and per-block feature maps (Zeiler & Fergus 2014, Krizhevsky et al. 2012 Fig. 3).

- filters.png: the kernels of the first convolution as an image grid. A
  kernel with 3 input channels is shown in colour (RGB), others as the
  mean over their input channels; each kernel is scaled to [0, 1] on its
  own (min-max), as AlexNet's Figure 3 shows them, so the pattern and not
  the magnitude is visible.
- features_NN_<layer>.png: the feature maps of one image after each block,
  i.e. the last layer at each spatial resolution before the network
  downsamples (the convolution before a pooling, an inception or residual
  block's output before the next stride), and the last map before the
  classifier. Up to 32 channels per figure, those with the largest mean
  activation, each scaled to [0, 1] on its own.

The model comes from a run directory (best.keras and its preprocessing),
an export (model.keras and kerascnn.json) or a registered model name (built
fresh, random weights); the image goes through the model's own training
preprocessing (`kerascnn.data.preprocessing.Preprocessing`).
"""

import dataclasses
import math
import pathlib
import re

import keras
import numpy as np

from kerascnn.storage.atomic import save_figure
from kerascnn.analysis.graph import spatial_shape, walk
from kerascnn.errors import DataError, UserError

MAX_FILTERS = 96
MAX_CHANNELS = 32
# Preprocessing for a freshly built model, which has no training statistics:
# maps 0-255 to about [-2, 2], the range a normalised image has.
FRESH_MEAN, FRESH_STD = (127.5,) * 3, (64.0,) * 3


@dataclasses.dataclass
class Loaded:
    """A model to look at, its preprocessing and where it came from."""

    model: object
    preprocessing: object
    source: str  # "run", "export" or "fresh"
    description: str


def load_for_analysis(spec, input_shape=None, num_classes=None):
    """A run directory, an export directory or a registered model name -> `Loaded`."""
    from kerascnn.serving import export
    from kerascnn.storage import rundir
    from kerascnn import layers as _layers  # noqa: F401 -- registers the custom layers a model may hold (LRN)
    from kerascnn.storage.readback import load_keras_model
    from kerascnn.data.preprocessing import Preprocessing
    from kerascnn.models import list_models

    path = pathlib.Path(spec)
    if path.is_dir():
        if (path / rundir.CONFIG).exists():
            from kerascnn.serving.predictor import load_run

            config, model, preprocessing = load_run(path)
            return Loaded(model, preprocessing, "run", f"run {path} ({config['model']}, best checkpoint)")
        if (path / export.MANIFEST).exists() and (path / export.KERAS_FILE).exists():
            manifest = export.read_manifest(path, serving=False)
            model = load_keras_model(path / export.KERAS_FILE, export.damaged(path))
            return Loaded(model, manifest["preprocessing"], "export", f"export {path} ({manifest.get('model', model.name)})")
        raise DataError(
            f"{path} is neither a run directory (config.json, best.keras) nor an export "
            f"({export.KERAS_FILE}, {export.MANIFEST}); pass runs/<run>, saved_models/<model>/<version> "
            "or a model name"
        )
    if spec not in list_models():
        if path.exists() or "/" in spec or "\\" in spec:
            raise DataError(f"{spec} is not a run directory, an export directory or a registered model name")
        from kerascnn.models import check_model_name

        check_model_name(spec)  # raises with the list of names
    from kerascnn.analysis.build import build_model

    model = build_model(spec, input_shape, num_classes)
    size = tuple(model.inputs[0].shape)[1:3]
    preprocessing = Preprocessing(size, FRESH_MEAN, FRESH_STD)
    return Loaded(model, preprocessing, "fresh", f"{spec} freshly built with random weights (not trained)")


def first_convolution(model):
    """The first convolution of the model, in graph order."""
    for call in walk(model):
        if isinstance(call.layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            return call.layer
    raise UserError(f"{model.name} has no 2-D convolution whose filters could be shown")


def _unit(a):
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _grid(n):
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def plot_filters(layer, path, title=None):
    """The kernels of `layer` as an image grid (see the module docstring); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float32)  # (kh, kw, in, out)
    n = min(kernel.shape[-1], MAX_FILTERS)
    rows, cols = _grid(n)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9 + 0.5, rows * 0.9 + 0.8), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        k = kernel[..., i]
        if k.shape[-1] == 3:
            ax.imshow(_unit(k), interpolation="nearest")
        else:
            ax.imshow(_unit(k.mean(axis=-1)), cmap="gray", interpolation="nearest")
    kh, kw, cin, cout = kernel.shape
    fig.suptitle(title or f"{layer.name}: {n} of {cout} filters, {kh}x{kw}x{cin}")
    return save_figure(fig, path)


def block_outputs(model):
    """Names of the layers after which a block ends (see the module docstring), in order."""
    calls = [c for c in walk(model) if "/" not in c.name]
    consumers = {}
    # Axis order of each tensor relative to (H, W, C): ResNet's option-A shortcut
    # permutes channels into a spatial place and back; those maps are no blocks.
    order = {}
    for c in calls:
        for t in c.inputs:
            consumers.setdefault(id(t), []).append(c)
        before = order.get(id(c.inputs[0]), (1, 2, 3)) if c.inputs else (1, 2, 3)
        if isinstance(c.layer, keras.layers.Permute):
            before = tuple(before[d - 1] for d in c.layer.dims)
        for t in c.outputs:
            order[id(t)] = before
    calls = [c for c in calls if order[id(c.outputs[0])] == (1, 2, 3)]

    def is_padding(c):
        return isinstance(c.layer, (keras.layers.ZeroPadding2D, keras.layers.Cropping2D))

    def downsampled_by(t, size):
        for c in consumers.get(id(t), []):
            out = spatial_shape(c.outputs[0]) if order[id(c.outputs[0])] == (1, 2, 3) else None
            if is_padding(c) and downsampled_by(c.outputs[0], size):
                return True
            if out is not None and not is_padding(c) and (out[0] < size[0] or out[1] < size[1]):
                return True
        return False

    by_size = {}
    last = None
    for c in calls:
        t = c.outputs[0]
        size = spatial_shape(t)
        if size is None or not c.inputs or is_padding(c):
            continue
        last = c
        if downsampled_by(t, size):
            by_size[size] = c  # a later block at the same resolution replaces an earlier one
    chosen = {id(c) for c in by_size.values()}
    if last is not None:
        chosen.add(id(last))
    return [c.name for c in calls if id(c) in chosen]


def plot_feature_maps(name, maps, path, title):
    """Up to MAX_CHANNELS channels of one feature map [H, W, C] (largest mean first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(-maps.mean(axis=(0, 1)))[:MAX_CHANNELS]
    rows, cols = _grid(len(order))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2 + 0.5, rows * 1.2 + 0.8), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(order):
            ax.imshow(_unit(maps[..., order[i]]), cmap="viridis", interpolation="nearest")
            ax.set_title(str(int(order[i])), fontsize=6)
    fig.suptitle(title)
    return save_figure(fig, path)


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def visualize(loaded, out_dir, image=None):
    """Write filters.png and, given an image (uint8 [H, W, 3]), one feature-map PNG per block.

    Returns the list of written paths.
    """
    out_dir = pathlib.Path(out_dir)
    model = loaded.model
    note = " (random weights)" if loaded.source == "fresh" else ""
    conv = first_convolution(model)
    written = [plot_filters(conv, out_dir / "filters.png",
                            title=f"{model.name} {conv.name}: first-layer filters{note}")]
    if image is None:
        return written
    names = block_outputs(model)
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    x = loaded.preprocessing(np.asarray(image)[None])
    outputs = probe(x, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    for i, (name, maps) in enumerate(zip(names, outputs), start=1):
        maps = keras.ops.convert_to_numpy(maps)[0].astype(np.float32)
        h, w, c = maps.shape
        written.append(
            plot_feature_maps(
                name, maps, out_dir / f"features_{i:02d}_{_safe(name)}.png",
                title=f"{model.name} after {name}: {h}x{w}x{c}{note}",
            )
        )
    return written
