"""The precision an export computes in: float32 copies of mixed-precision models.

A model trained under a mixed policy (mixed_bfloat16, mixed_float16) keeps
its variables in float32 and casts them to the compute dtype on every call
(Micikevicius et al. 2018, "Mixed Precision Training", section 3.1: float32
master weights). Served that way, a batch-1 call casts every weight (35 M
for alexnet_cifar) before doing a few MFLOPs of work: on the 2-core Xeon a
mixed_bfloat16 export answered in 35 ms at batch 1 where the float32 copy
of the same weights took 16 ms (benchmarks/NOTES.md, section 16). Serving
exports therefore compute in float32 by default: the same weights, no casts,
and probabilities closer to the float32 master weights than the training
forward pass. `trained` keeps the training policy, for accelerators where
half-precision matmuls at large batches outweigh the casts.
"""

import keras

SERVING_PRECISIONS = ("float32", "trained")
DEFAULT_SERVING_PRECISION = "float32"


def float32_model(model):
    """`model` computing in float32: itself, or a copy with the same weights when layers use mixed precision."""
    if all(layer.dtype_policy.name == "float32" for layer in _all_layers(model)):
        return model
    serialized = keras.saving.serialize_keras_object(model)
    _set_float32(serialized)
    copy = keras.saving.deserialize_keras_object(serialized)
    copy.set_weights(model.get_weights())
    return copy


def serving_model(model, serving_precision=DEFAULT_SERVING_PRECISION):
    """The model a serving export computes with: `float32_model(model)`, or `model` itself for `trained`."""
    if serving_precision not in SERVING_PRECISIONS:
        raise ValueError(f"serving precision is one of {', '.join(SERVING_PRECISIONS)}, not {serving_precision!r}")
    return float32_model(model) if serving_precision == "float32" else model


def compute_dtype(model):
    """The compute dtype of `model`'s layers: "float32", "bfloat16" or "float16" (the lowest one used)."""
    dtypes = {layer.dtype_policy.compute_dtype for layer in _all_layers(model)}
    for dtype in ("float16", "bfloat16"):
        if dtype in dtypes:
            return dtype
    return "float32"


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _set_float32(node):
    """Replace every mixed dtype policy in a serialized model by float32, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "dtype" and isinstance(value, dict) and value.get("class_name") == "DTypePolicy":
                node[key] = "float32"
            else:
                _set_float32(value)
    elif isinstance(node, list):
        for item in node:
            _set_float32(item)
