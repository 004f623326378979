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

`bfloat16` stores every weight in bfloat16 (Keras' "bfloat16" policy:
variables and arithmetic in bfloat16, so no per-call casts), batch norm
folded into the layer before it in float32 first and the folded weights
rounded once. Half the bytes of float32 to read per call, and the
arithmetic of the mixed_bfloat16 forward pass the model was validated with,
whose logits head (`FLOAT32_HEAD`) computes in float32: so does the
export's, or its logits would carry bfloat16's 8-bit mantissa (a step of
0.0625 at a logit of 10) that training never had.
On CPUs with AMX or AVX512-BF16, oneDNN's fused bfloat16 matmul + bias
kernel reads the dense weights of a batch-1 call at float32's rate per byte
and the convolutions run on the bfloat16 units: on an AMX Xeon (2 cores)
alexnet_cifar's export answered a batch-1 call in 3.3 ms against float32's
4.9 ms and served 6,757 images/s at batch 256 against 1,353, and on a Zen 4
EPYC (AVX512-BF16) in 4.3 ms against 7.6 (benchmarks/NOTES.md, 65-66).
Without such units bfloat16 is emulated and slow: float32 stays the
default, which serves the same everywhere.
"""

import keras

from kerascnn.config import SERVING_PRECISIONS
from kerascnn.serving.fold_batch_norm import fold_batch_norm

DEFAULT_SERVING_PRECISION = "float32"
# The layers the networks build in float32 whatever the run's policy (kerascnn.models.common's
# classifier head): the logits, which mixed-precision training computes in float32 too.
FLOAT32_HEAD = ("predictions", "logit_scale")


def float32_model(model):
    """`model` computing in float32: itself, or a copy with the same weights when layers use mixed precision."""
    if all(layer.dtype_policy.name == "float32" for layer in _all_layers(model)):
        return model
    return _copy_with_policy(model, "float32")


def bfloat16_model(model):
    """A copy of `model` storing and computing in bfloat16, its batch norms folded in float32 before the rounding."""
    folded, _ = fold_batch_norm(float32_model(model))
    return _copy_with_policy(folded, "bfloat16", keep=FLOAT32_HEAD)


def serving_model(model, serving_precision=DEFAULT_SERVING_PRECISION):
    """The model a serving export computes with: `float32_model(model)`, `bfloat16_model(model)`, or `model` for `trained`."""
    if serving_precision not in SERVING_PRECISIONS:
        raise ValueError(f"serving precision is one of {', '.join(SERVING_PRECISIONS)}, not {serving_precision!r}")
    if serving_precision == "float32":
        return float32_model(model)
    return bfloat16_model(model) if serving_precision == "bfloat16" else model


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


def _copy_with_policy(model, policy, keep=()):
    """A copy of `model` whose every layer but those named in `keep` has the dtype policy `policy`,
    with `model`'s weights (cast to it)."""
    serialized = keras.saving.serialize_keras_object(model)
    _set_policy(serialized, policy, keep)
    copy = keras.saving.deserialize_keras_object(serialized)
    copy.set_weights(model.get_weights())
    return copy


def _set_policy(node, policy, keep=()):
    """Replace every layer's dtype policy in a serialized model by `policy`, in place.

    Input layers carry a plain dtype string, not a policy, and keep it: the
    first layer casts its float32 input to its own compute dtype. A layer
    whose config names it in `keep` keeps its policy, and the next layer
    casts its output as it would any input.
    """
    if isinstance(node, dict):
        if node.get("name") in keep and "dtype" in node:
            return
        for key, value in node.items():
            if key == "dtype" and isinstance(value, dict) and value.get("class_name") == "DTypePolicy":
                node[key] = policy
            else:
                _set_policy(value, policy, keep)
    elif isinstance(node, list):
        for item in node:
            _set_policy(item, policy, keep)
