"""Receptive fields: size, jump and start of every layer, along the graph.

The standard recurrence (Dumoulin & Visin 2016, "A guide to convolution
arithmetic"; Araujo, Norris & Sim 2019, "Computing Receptive Fields of
Convolutional Neural Networks", Distill), per spatial axis, for a layer with
kernel k, stride s, dilation d and left (top) padding p:

    k_eff = d * (k - 1) + 1
    j_out = j_in * s                              jump: input pixels between
                                                  neighbouring output units
    r_out = r_in + (k_eff - 1) * j_in             field size in input pixels
    start_out = start_in + ((k_eff - 1) / 2 - p) * j_in

starting from the image with r = 1, j = 1, start = 0. `start` is the centre
of the field of the first (top-left) output unit in input pixel coordinates
(pixel i has its centre at i); unit i of a layer is centred at
start + i * j and sees the input pixels start + i * j +- (r - 1) / 2
(clipped to the image: padding is not image).

Padding: "valid" is p = 0; "same" follows TensorFlow, which pads
pad_total = max((ceil(n / s) - 1) * s + k_eff - n, 0) for an input of n
pixels and puts pad_total // 2 on the left (top) and the rest on the right,
so a stride-2 "same" layer on an even input pads only on the right.
ZeroPadding2D is a 1x1/1 layer with its own left padding, Cropping2D one
with a negative one. Layers that do not move pixels (activations,
normalisation, LRN included, dropout, batch norm) keep the field. Where
branches meet (Add, Concatenate: inception modules and residual blocks)
the field is the largest over the branches. After global pooling, Flatten or
any layer that mixes all positions, every unit sees the whole input: the
field is reported as "global" (size = the input size).
"""

import dataclasses
import math

import keras

from kerascnn.analysis.graph import is_nested_model, nested_links, walk
from kerascnn.analysis.profile import TRANSPOSED_CONVS


@dataclasses.dataclass(frozen=True)
class Axis:
    """Receptive field along one spatial axis (None for a non-spatial axis)."""

    size: float
    jump: float
    start: float
    extent: int  # pixels of this axis in the tensor (n)


@dataclasses.dataclass(frozen=True)
class LayerField:
    """One row: the field of a layer's output along height and width."""

    name: str
    kind: str
    depth: int  # convolutions and poolings on the longest path from the input
    output_shape: tuple
    size: tuple  # (height, width) in input pixels
    jump: tuple
    start: tuple
    is_global: bool
    moves_field: bool  # a convolution or pooling (a point on the depth plot)

    def covered(self, image_shape, unit=(0, 0)):
        """((top, bottom), (left, right)) input pixels seen by output unit `unit`, clipped to the image."""
        if self.is_global:
            return tuple((0, n - 1) for n in image_shape)
        spans = []
        for r, j, s, i, n in zip(self.size, self.jump, self.start, unit, image_shape):
            centre = s + i * j
            lo, hi = centre - (r - 1) / 2, centre + (r - 1) / 2
            spans.append((max(0, math.ceil(lo)), min(n - 1, math.floor(hi))))
        return tuple(spans)

    def to_dict(self):
        return {
            "layer": self.name,
            "type": self.kind,
            "depth": self.depth,
            "output_shape": list(self.output_shape),
            "size": list(_num(v) for v in self.size),
            "jump": list(_num(v) for v in self.jump),
            "start": list(_num(v) for v in self.start),
            "global": self.is_global,
        }


def _num(v):
    return int(v) if float(v).is_integer() else float(v)


def _tf_same_pad(n, k_eff, s):
    """TensorFlow's left padding for "same": pad_total // 2 of the total."""
    total = max((math.ceil(n / s) - 1) * s + k_eff - n, 0)
    return total // 2


def _window(layer, rank):
    """(kernel, stride, dilation, padding mode) per spatial axis, or None when the layer moves no pixels."""
    cfg = layer.get_config()
    if "kernel_size" in cfg and not isinstance(layer, TRANSPOSED_CONVS):
        dil = cfg.get("dilation_rate") or (1,) * rank
        return cfg["kernel_size"], cfg["strides"], dil, cfg["padding"]
    if "pool_size" in cfg and cfg.get("pool_size") is not None:
        strides = cfg.get("strides") or cfg["pool_size"]
        return cfg["pool_size"], strides, (1,) * rank, cfg["padding"]
    return None


GLOBAL_LAYERS = (
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
    keras.layers.Dense,
)


class _Unsupported(Exception):
    pass


def _step(layer, axes, input_tensor, output_tensor):
    """Axis states of the output from those of the (single) input."""
    out_shape = tuple(output_tensor.shape)[1:]
    in_shape = tuple(input_tensor.shape)[1:]
    if isinstance(layer, keras.layers.Permute):
        return tuple(axes[d - 1] for d in layer.dims)
    if isinstance(layer, keras.layers.ZeroPadding2D):
        pads = layer.padding  # ((top, bottom), (left, right)) over the first two axes
        out = list(axes)
        for i, (left, _) in enumerate(pads):
            a = axes[i]
            if a is not None:
                out[i] = Axis(a.size, a.jump, a.start - left * a.jump, out_shape[i])
        return tuple(out)
    if isinstance(layer, keras.layers.Cropping2D):
        out = list(axes)
        for i, (left, _) in enumerate(layer.cropping):
            a = axes[i]
            if a is not None:
                out[i] = Axis(a.size, a.jump, a.start + left * a.jump, out_shape[i])
        return tuple(out)
    window = _window(layer, len(in_shape) - 1)
    if window is not None:
        kernel, strides, dilation, padding = window
        out = list(axes)
        for i, (k, s, d) in enumerate(zip(kernel, strides, dilation)):
            a = axes[i]
            k_eff = d * (k - 1) + 1
            if padding == "valid":
                pad = 0
            elif padding == "same":
                pad = _tf_same_pad(a.extent, k_eff, s)
            else:
                raise _Unsupported(f"padding={padding!r}")
            out[i] = Axis(
                a.size + (k_eff - 1) * a.jump,
                a.jump * s,
                a.start + ((k_eff - 1) / 2 - pad) * a.jump,
                out_shape[i],
            )
        return tuple(out)
    if out_shape[:-1] == in_shape[:-1]:
        return tuple(
            None if a is None else Axis(a.size, a.jump, a.start, n) for a, n in zip(axes, out_shape)
        )
    raise _Unsupported("it changes the spatial size in a way the recurrence does not cover")


def _merge(states):
    """Where branches meet: per axis, the branch with the largest field."""
    merged = []
    for per_axis in zip(*states):
        known = [a for a in per_axis if a is not None]
        merged.append(max(known, key=lambda a: (a.size, a.jump)) if known else None)
    return tuple(merged)


def receptive_fields(model):
    """[LayerField] for every layer of a Functional model with a 4-D (image) input."""
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(f"{model.name}: receptive fields need one image input (N, H, W, C)")
    image = tuple(model.inputs[0].shape)[1:3]
    if None in image:
        raise ValueError(f"{model.name}: receptive fields need a fixed input size")
    state = {}  # id(KerasTensor) -> tuple of Axis (None for the channel axis) or "global"
    depth = {}
    alias = {}  # id(outer output of a nested model) -> the inner output tensor

    def get(table, t):
        while id(t) in alias:
            t = alias[id(t)]
        return table[id(t)]

    rows = []
    for call in walk(model):
        layer = call.layer
        if not call.inputs:  # InputLayer
            t = call.outputs[0]
            if id(t) in state:  # the input of a nested model, linked to its outer input
                continue
            shape = tuple(t.shape)[1:]
            state[id(t)] = tuple(Axis(1, 1, 0, n) for n in shape[:-1]) + (None,)
            depth[id(t)] = 0
            rows.append(_row(call, state[id(t)], 0, False))
            continue
        if is_nested_model(layer):
            ins, outs = nested_links(call)
            for inner, outer in ins:
                state[id(inner)], depth[id(inner)] = get(state, outer), get(depth, outer)
            for outer, inner in outs:
                alias[id(outer)] = inner
            continue
        inputs = [get(state, t) for t in call.inputs]
        d_in = max(get(depth, t) for t in call.inputs)
        moves = _window(layer, 2) is not None and not isinstance(layer, GLOBAL_LAYERS)
        if any(s == "global" for s in inputs) or isinstance(layer, GLOBAL_LAYERS):
            out = "global"
        elif len(inputs) > 1:
            out = _merge(inputs)
            if len({tuple(t.shape)[1:-1] for t in call.inputs}) > 1:
                raise ValueError(f"layer {call.name} merges maps of different sizes")
        else:
            try:
                out = _step(layer, inputs[0], call.inputs[0], call.outputs[0])
            except _Unsupported as e:
                raise ValueError(
                    f"layer {call.name} ({type(layer).__name__}): receptive field not supported: {e}"
                ) from None
        d_out = d_in + (1 if moves else 0)
        for t in call.outputs:
            state[id(t)] = out
            depth[id(t)] = d_out
        rows.append(_row(call, out, d_out, moves, image))
    return rows


def _row(call, axes, depth, moves, image=None):
    t = call.outputs[0]
    shape = tuple(t.shape)[1:]
    if axes == "global":
        return LayerField(call.name, type(call.layer).__name__, depth, shape, tuple(image),
                          (None, None), (None, None), True, moves)
    # The spatial axes, wherever a Permute has moved them (ResNet's option-A shortcut).
    spatial = [a for a in axes if a is not None][:2]
    return LayerField(
        call.name, type(call.layer).__name__, depth, shape,
        tuple(a.size for a in spatial), tuple(a.jump for a in spatial), tuple(a.start for a in spatial),
        False, moves,
    )


def last_spatial(rows):
    """The last row that still has a spatial field (the last map before global pooling/flatten)."""
    spatial = [r for r in rows if not r.is_global]
    return spatial[-1]


def field_by_depth(rows):
    """[(depth, largest field size)] over the convolutions and poolings, for the depth plot."""
    best = {}
    for r in rows:
        if r.moves_field and not r.is_global:
            best[r.depth] = max(best.get(r.depth, 0), max(r.size))
    return sorted(best.items())


def _fmt_pair(values):
    values = [_num(v) for v in values]
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def table_rows(rows, all_layers=False):
    """Rows for display: the layers that move the field (and the input), or all of them."""
    out = []
    for r in rows:
        if not (all_layers or r.moves_field or r.depth == 0 and r.kind == "InputLayer"):
            continue
        out.append({
            "layer": r.name,
            "type": r.kind,
            "depth": r.depth,
            "output": "x".join(map(str, r.output_shape)),
            "field": "global" if r.is_global else _fmt_pair(r.size),
            "jump": "" if r.is_global else _fmt_pair(r.jump),
            "start": "" if r.is_global else _fmt_pair(r.start),
        })
    return out


def coverage_line(model_name, rows, image_shape):
    """One sentence: the last map's field and the input pixels it covers."""
    last = last_spatial(rows)
    h, w = last.output_shape[:2]
    (t, b), (left, right) = last.covered(image_shape)
    centre = (h // 2, w // 2)
    (ct, cb), (cl, cr) = last.covered(image_shape, centre)
    whole = (ct, cb, cl, cr) == (0, image_shape[0] - 1, 0, image_shape[1] - 1)
    return (
        f"{model_name}: last map {last.name} ({h}x{w}) has a {_fmt_pair(last.size)}-pixel field, "
        f"jump {_fmt_pair(last.jump)}, start {_fmt_pair(last.start)}; on the "
        f"{image_shape[0]}x{image_shape[1]} input its unit (0,0) sees rows {t}-{b}, columns {left}-{right}, "
        f"its centre unit {centre} rows {ct}-{cb}, columns {cl}-{cr}"
        + (" (the whole image)" if whole else "")
    )


def plot_fields(named_rows, path):
    """Field size against depth (convolutions and poolings) for several models on one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from kerascnn.storage.atomic import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in named_rows:
        points = field_by_depth(rows)
        ax.plot([d for d, _ in points], [r for _, r in points], marker="o", markersize=3, label=name)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("depth (convolutions and poolings from the input)")
    ax.set_ylabel("receptive field (pixels)")
    ax.set_title("Receptive field growth (largest over branches)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
