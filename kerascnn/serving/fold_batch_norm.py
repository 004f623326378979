"""Batch normalisation folded into the convolution or dense layer before it, for serving.

At inference a batch-norm layer (Ioffe & Szegedy 2015, Algorithm 2, step
11) is a fixed per-channel affine map of its input z:

    y = gamma * (z - mu) / sqrt(sigma^2 + epsilon) + beta

with the moving mean mu and variance sigma^2. When z is the output of a
linear layer, z = W * x + b (a convolution or a dense product, no
activation between), the two compose into one linear layer with, per
output channel c,

    s_c = gamma_c / sqrt(sigma^2_c + epsilon)
    W'[..., c] = s_c * W[..., c]
    b'_c = s_c * (b_c - mu_c) + beta_c

and y = W' * x + b' exactly (up to float32 rounding). The served model then
skips one pass over every activation per layer, and TensorFlow's graph
optimiser fuses the convolution, its bias and the ReLU after it into one
kernel. Profiled at batch 1 on a 2-core AVX2 CPU, alexnet_cifar with batch
norm spent 0.8 ms of its 11 ms of op time in its seven batch-norm layers;
folded, its export served 1.09x the images per second at batch 256 and
the same batch-1 latency within the noise (benchmarks/NOTES.md, 25).
TensorFlow Lite's converter does the same fold; this gives it to the
SavedModel.

Only the exported serving signature computes with the folded copy: the
`.keras` file and checkpoints keep the trained layers, and the export's
verification compares the reloaded float32 SavedModel with the unfolded
model (`kerascnn.serving.export.verify_export`; a bfloat16 one, folded
before its weights are rounded, with that rounded copy).

A batch-norm layer is folded when it normalises the last axis, is called
once, and its only input is the output of a `Conv2D` or `Dense` layer that
is called once, has no activation and feeds nothing else. Other batch norms
(after an addition, before a convolution as in pre-activation ResNets,
inside a nested model) stay as they are.
"""

import keras
import numpy as np

FOLDABLE = (keras.layers.Conv2D, keras.layers.Dense)


def fold_batch_norm(model):
    """(`model` with its foldable batch norms folded, the number folded).

    Returns `model` itself and 0 when nothing can be folded (including
    models that are not functional). The copy has `model`'s layers and
    weights, the folded linear layers with a bias, and no folded batch norm.
    """
    # One config, read once: the pairs are found in it and it is rewired in place.
    config = _functional_config(model)
    pairs = _pairs(model, config)
    if not pairs:
        return model, 0
    renamed = {bn: linear for linear, bn in pairs.items()}
    layers = []
    for layer in config["layers"]:
        if layer["name"] in renamed:
            continue
        if layer["name"] in pairs:
            layer["config"]["use_bias"] = True
        _rewire(layer.get("inbound_nodes", []), renamed)
        layers.append(layer)
    config["layers"] = layers
    _rewire(config["output_layers"], renamed)
    folded = model.__class__.from_config(config)
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        if layer.name in pairs:
            layer.set_weights(_folded_weights(source, model.get_layer(pairs[layer.name])))
        else:
            layer.set_weights(source.get_weights())
    return folded, len(pairs)


def batch_norm_count(model):
    """How many BatchNormalization layers `model` holds, nested models' included."""
    return sum(batch_norm_count(layer) if isinstance(layer, keras.Model)
               else isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def foldable_pairs(model):
    """{linear layer name: batch-norm layer name} of the pairs `fold_batch_norm` folds."""
    return _pairs(model, _functional_config(model))


def _pairs(model, config):
    """`foldable_pairs` of `model`, whose functional config (or None) is `config`."""
    if config is None:
        return {}
    layer_configs = config["layers"]
    consumers = {}
    for layer in layer_configs:
        for name in _history_names(layer.get("inbound_nodes", [])):
            consumers[name] = consumers.get(name, 0) + 1
    for name in _history_names(config.get("output_layers", [])):
        consumers[name] = consumers.get(name, 0) + 1
    calls = {layer["name"]: len(layer.get("inbound_nodes", [])) for layer in layer_configs}
    pairs = {}
    for layer in layer_configs:
        bn = _layer(model, layer["name"])
        if not isinstance(bn, keras.layers.BatchNormalization) or calls[bn.name] != 1:
            continue
        inputs = _history_names(layer["inbound_nodes"])
        if len(inputs) != 1:
            continue
        linear = _layer(model, inputs[0])
        if linear is not None and calls.get(linear.name) == 1 and consumers.get(linear.name) == 1 and _foldable(linear, bn):
            pairs[linear.name] = bn.name
    return pairs


def _foldable(linear, bn):
    """A Conv2D or Dense without activation, and a batch norm over its channels (the last axis)."""
    if not isinstance(linear, FOLDABLE) or isinstance(linear, keras.layers.DepthwiseConv2D):
        return False
    if keras.activations.serialize(linear.activation) != "linear":
        return False
    rank = len(bn.input.shape)
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    return axis in (-1, rank - 1)


def _folded_weights(linear, bn):
    """[W', b'] of the module docstring, computed in float64 and stored in the linear layer's dtype."""
    kernel = np.asarray(linear.kernel.numpy(), np.float64)
    channels = kernel.shape[-1]
    bias = np.asarray(linear.bias.numpy(), np.float64) if linear.use_bias else np.zeros(channels)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    variance = np.asarray(bn.moving_variance.numpy(), np.float64)
    scale = gamma / np.sqrt(variance + bn.epsilon)
    dtype = linear.kernel.dtype
    return [(kernel * scale).astype(dtype), (scale * (bias - mean) + beta).astype(dtype)]


def _functional_config(model):
    """`model`'s functional config with lists for tuples (so it can be rewired in place); None if not functional."""
    try:
        config = _lists(model.get_config())
    except NotImplementedError:  # a subclassed model
        return None
    layers = config.get("layers") if isinstance(config, dict) else None
    if not layers or not all("name" in layer and "inbound_nodes" in layer for layer in layers):
        return None  # Sequential's config lists layers without their connections
    return config


def _lists(node):
    if isinstance(node, dict):
        return {key: _lists(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_lists(item) for item in node]
    return node


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _history_names(node):
    """The names of the layers whose outputs `node` (a config fragment) takes."""
    if isinstance(node, dict):
        if "keras_history" in node.get("config", {}):
            return [node["config"]["keras_history"][0]]
        return [name for value in node.values() for name in _history_names(value)]
    if isinstance(node, list):
        # output_layers is [name, node index, tensor index] or a list of those.
        if len(node) == 3 and isinstance(node[0], str) and all(isinstance(i, int) for i in node[1:]):
            return [node[0]]
        return [name for item in node for name in _history_names(item)]
    return []


def _rewire(node, renamed):
    """Point every reference to a folded batch norm at its linear layer, in place."""
    if isinstance(node, dict):
        history = node.get("config", {}).get("keras_history") if isinstance(node.get("config"), dict) else None
        if history is not None and history[0] in renamed:
            history[0] = renamed[history[0]]
            return
        for value in node.values():
            _rewire(value, renamed)
    elif isinstance(node, list):
        if len(node) == 3 and isinstance(node[0], str) and all(isinstance(i, int) for i in node[1:]):
            if node[0] in renamed:
                node[0] = renamed[node[0]]
            return
        for item in node:
            _rewire(item, renamed)
