"""Layer-by-layer profile: output shape, activation memory, parameters, MACs.

What the lecture tables of AlexNet and VGG compute by hand (e.g. Stanford
CS231n's VGG-16 memory/parameter walk-through), for any Functional model,
one image at a time:

- output shape: the layer's output without the batch axis (H x W x C).
- activation memory: output elements x bytes of the dtype (4 for float32,
  2 for float16 and bfloat16), in KB of 1024 bytes. AlexNet-v2's conv1 at
  227x227: 56 x 56 x 64 x 4 B = 802,816 B = 784 KB.
- parameters: the sizes of the layer's weights, which its configuration
  fixes: a convolution has k_h * k_w * (C_in / groups) * C_out + C_out
  (bias), a dense layer C_in * C_out + C_out, batch normalisation 4 * C
  (gamma, beta and the two moving statistics, as `count_params` counts).
- MACs (multiply-accumulates of weights with inputs):
    Conv (grouped and depthwise too): H_out * W_out * prod(kernel shape),
        the kernel shape (k_h, k_w, C_in / groups, C_out) holding the group
        split, i.e. H_out * W_out * C_out * (k_h * k_w * C_in / groups);
    separable conv: the depthwise and the pointwise parts;
    transposed conv: H_in * W_in * prod(kernel shape);
    Dense: C_in * C_out per position.
  FLOPs = 2 x MACs (one multiply and one add each), TensorFlow's profiler's
  convention for Conv2D and MatMul. The papers count multiply-adds, the MACs
  column, and some call those FLOPs: ResNet's Table 1 (He et al. 2016) gives
  VGG-16 15.3 x 10^9 "FLOPs" and ResNet-18 1.8 x 10^9, which are MACs here.
  Pooling, normalisation (LRN, batch norm), activations,
  additions and concatenations have 0 MACs: they multiply no weights, and
  the course tables leave them out.

Totals: parameters and MACs are summed over all layers (the parameter total
equals `model.count_params()`). The activation-memory total counts each
tensor the forward pass allocates once: layers that only reinterpret or
pass on their input at inference (Flatten, Reshape, Dropout and other
training-only noise, Identity) are listed with the size of their output
but add nothing to the total; the input image is counted.
"""

import dataclasses

import keras
import numpy as np

from kerascnn.analysis.graph import is_nested_model, walk

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

# Layers whose output is a view of their input, or their input itself at inference.
VIEW_LAYERS = (
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.Identity,
)


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """One row of the profile (one call of one layer, for one image)."""

    name: str
    kind: str
    config: str
    output_shape: tuple
    activation_bytes: int
    params: int
    trainable_params: int
    macs: int
    allocates: bool

    @property
    def flops(self):
        return 2 * self.macs

    @property
    def activation_kb(self):
        return self.activation_bytes / 1024

    def to_dict(self):
        return {
            "layer": self.name,
            "type": self.kind,
            "config": self.config,
            "output_shape": list(self.output_shape),
            "activation_bytes": self.activation_bytes,
            "activation_kb": self.activation_kb,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "counted_in_memory_total": self.allocates,
        }


@dataclasses.dataclass(frozen=True)
class ModelProfile:
    """The rows of a model and their totals."""

    model: str
    input_shape: tuple
    dtype: str
    layers: tuple

    @property
    def params(self):
        return sum(r.params for r in self.layers)

    @property
    def trainable_params(self):
        return sum(r.trainable_params for r in self.layers)

    @property
    def macs(self):
        return sum(r.macs for r in self.layers)

    @property
    def flops(self):
        return 2 * self.macs

    @property
    def activation_bytes(self):
        return sum(r.activation_bytes for r in self.layers if r.allocates)

    @property
    def activation_kb(self):
        return self.activation_bytes / 1024

    def totals(self):
        return {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "activation_kb": self.activation_kb,
        }

    def row(self, name):
        for r in self.layers:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self):
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "layers": [r.to_dict() for r in self.layers],
            "total": self.totals(),
        }


def _size(shape):
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _spatial(tensor):
    """Number of positions a kernel is applied at: the product of the axes between batch and channels."""
    shape = tuple(tensor.shape)[1:-1]
    if any(d is None for d in shape):
        raise ValueError(f"unknown spatial size {tuple(tensor.shape)}; profile a model with a fixed input shape")
    return _size(shape)


SEPARABLE_CONVS = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
TRANSPOSED_CONVS = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
# Kernel (k..., C_in / groups, C_out) or, depthwise, (k..., C_in, multiplier).
CONVS = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
)


def layer_macs(layer, inputs, outputs):
    """Multiply-accumulates of one call of `layer` on one image (formulas in the module docstring)."""
    if isinstance(layer, SEPARABLE_CONVS):
        positions = _spatial(outputs[0])
        return positions * (_size(layer.depthwise_kernel.shape) + _size(layer.pointwise_kernel.shape))
    if isinstance(layer, TRANSPOSED_CONVS):
        return _spatial(inputs[0]) * _size(layer.kernel.shape)
    if isinstance(layer, CONVS + (keras.layers.Dense,)):
        return _spatial(outputs[0]) * _size(layer.kernel.shape)
    return 0


def describe(layer):
    """A short configuration: '11x11/4 valid, 64', '3x3/2 same', '4096', 'pad 2'."""
    cfg = layer.get_config()
    if "kernel_size" in cfg:
        k = "x".join(str(d) for d in cfg["kernel_size"])
        s = cfg.get("strides", (1,))
        text = f"{k}/{s[0] if len(set(s)) == 1 else 'x'.join(map(str, s))} {cfg.get('padding', '')}".strip()
        if cfg.get("dilation_rate") and set(cfg["dilation_rate"]) != {1}:
            text += f" d{cfg['dilation_rate'][0]}"
        if cfg.get("groups", 1) != 1:
            text += f" g{cfg['groups']}"
        out = cfg.get("filters") or (f"x{cfg['depth_multiplier']}" if "depth_multiplier" in cfg else None)
        return f"{text}, {out}" if out else text
    if "pool_size" in cfg:
        p = "x".join(str(d) for d in cfg["pool_size"])
        s = cfg.get("strides") or cfg["pool_size"]
        return f"{p}/{s[0] if len(set(s)) == 1 else 'x'.join(map(str, s))} {cfg.get('padding', '')}".strip()
    if "units" in cfg:
        return str(cfg["units"])
    if isinstance(layer, keras.layers.ZeroPadding2D):
        (top, bottom), (left, right) = cfg["padding"]
        return f"pad {top}" if len({top, bottom, left, right}) == 1 else f"pad {top},{bottom},{left},{right}"
    if "rate" in cfg and isinstance(layer, VIEW_LAYERS):
        return f"rate {cfg['rate']}"
    if "size" in cfg and "alpha" in cfg:  # LRN
        return f"n={cfg['size']}"
    if isinstance(layer, keras.layers.Activation):
        return str(cfg["activation"])
    return ""


def profile_model(model, dtype="float32"):
    """`ModelProfile` of `model` (Functional, fixed input shape) at activation `dtype`."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}. Received: dtype={dtype!r}")
    itemsize = DTYPE_BYTES[dtype]
    rows = []
    counted = set()  # a layer called more than once (shared weights) holds its weights once
    for call in walk(model):
        layer = call.layer
        if is_nested_model(layer):
            continue  # its layers are the rows
        if isinstance(layer, keras.layers.InputLayer) and "/" in call.name:
            continue  # a nested model's input is the outer tensor, already counted
        shapes = [tuple(t.shape)[1:] for t in call.outputs]
        if any(d is None for s in shapes for d in s):
            raise ValueError(f"layer {call.name} has an unknown output size {shapes}; give a fixed input shape")
        elements = sum(_size(s) for s in shapes)
        first = id(layer) not in counted
        counted.add(id(layer))
        rows.append(
            LayerProfile(
                name=call.name,
                kind=type(layer).__name__,
                config=describe(layer),
                output_shape=shapes[0] if len(shapes) == 1 else tuple(shapes),
                activation_bytes=elements * itemsize,
                params=sum(_size(w.shape) for w in layer.weights) if first else 0,
                trainable_params=sum(_size(w.shape) for w in layer.trainable_weights) if first else 0,
                macs=int(layer_macs(layer, call.inputs, call.outputs)),
                allocates=not isinstance(layer, VIEW_LAYERS),
            )
        )
    shape = tuple(model.inputs[0].shape)[1:] if len(model.inputs) == 1 else tuple(tuple(t.shape)[1:] for t in model.inputs)
    return ModelProfile(model.name, shape, dtype, tuple(rows))


PROFILE_COLUMNS = ("layer", "type", "config", "output_shape", "activation_kb", "params", "macs", "flops")
MD_HEADERS = ("layer", "type", "config", "output (HxWxC)", "memory (KB)", "parameters", "MACs", "FLOPs")
CSV_COLUMNS = (
    "layer", "type", "config", "output_shape", "activation_bytes", "activation_kb",
    "params", "trainable_params", "macs", "flops", "counted_in_memory_total",
)


def format_profile(profile, fmt="md"):
    """The profile as a Markdown table (with a heading and a total row), CSV or JSON text."""
    from kerascnn.analysis import tables

    rows = [r.to_dict() for r in profile.layers]
    total = {"layer": "total", **profile.totals()}
    if fmt == "json":
        return tables.json_text(profile.to_dict())
    if fmt == "csv":
        return tables.csv_text(CSV_COLUMNS, rows + [total])
    md_rows = [dict(zip(MD_HEADERS, (r[c] for c in PROFILE_COLUMNS))) for r in rows]
    md_rows.append({"layer": "**total**", "memory (KB)": total["activation_kb"], "parameters": total["params"],
                    "MACs": total["macs"], "FLOPs": total["flops"]})
    shape = "x".join(map(str, profile.input_shape))
    head = (
        f"## {profile.model} at {shape}, {profile.dtype} activations\n\n"
        f"{profile.params:,} parameters ({profile.trainable_params:,} trainable), "
        f"{profile.macs:,} MACs = {profile.flops:,} FLOPs per image, "
        f"{profile.activation_kb:,.2f} KB of activations per image "
        "(each allocated tensor once: Flatten, Dropout and other views add nothing).\n\n"
    )
    return head + tables.markdown(MD_HEADERS, md_rows)
