"""Convolution filters as graph constants in a serving signature.

TensorFlow's oneDNN convolution reorders its filter into the blocked layout
its kernels read on every call when the filter is a variable, and once, into
a cache, when the filter is a constant of the graph (the layout pass marks
the op `is_filter_const`). At batch 1 that reorder is a large share of a
convolution's time: alexnet_cifar's five convolutions took 1.70 ms per call
in bfloat16 with variable filters and 1.1 ms with constant ones on an AMX
Xeon, and its whole bfloat16 export answered in 4.26 ms instead of 5.16 on
an AMD EPYC with AVX512-BF16 (benchmarks/NOTES.md, 65-66).

`filters_as_constants(model, filters)` is entered inside the traced serving
function: while it is open, every plain `Conv2D` of `model` reads its kernel
as a `tf.constant` made in that trace, so the SavedModel's graph carries the
filters and its `variables/` holds only the weights the graph still reads
(biases, dense layers, batch norms left unfolded). The values are those of
the variables at export time; the function computed is the same.

A model whose filters exceed `MAX_CONSTANT_BYTES` keeps them as variables: a
graph is one protocol buffer, which cannot pass 2 GB.
"""

import contextlib

import keras

# Far under protobuf's 2 GB limit on a serialized graph; VGG-19's filters at
# 224x224 are 80 MB in float32.
MAX_CONSTANT_BYTES = 1 << 30


def convolutions(model):
    """The Conv2D layers of `model` (nested models included) whose kernel can be read as a constant.

    That is a kernel that is one plain variable computed in its own dtype: a
    mixed-precision layer casts its variables as it reads them (a constant
    would skip the cast), a LoRA-enabled one adds two more to it, and a
    quantized one reads an integer kernel with its scale.
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(convolutions(layer))
        elif (isinstance(layer, keras.layers.Conv2D) and not getattr(layer, "lora_enabled", False)
              and getattr(layer, "quantization_mode", None) is None
              and layer.dtype_policy.compute_dtype == layer.dtype_policy.variable_dtype):
            found.append(layer)
    return found


def filter_values(model, max_bytes=MAX_CONSTANT_BYTES):
    """{layer: its kernel as a NumPy array} for `convolutions(model)`, read once at export time.

    Empty (every filter stays a variable) when they add up to more than `max_bytes`.
    """
    filters = {layer: layer.kernel.numpy() for layer in convolutions(model)}
    return filters if sum(value.nbytes for value in filters.values()) <= max_bytes else {}


@contextlib.contextmanager
def filters_as_constants(model, filters):
    """Inside a `tf.function` trace: `model`'s convolutions read `filters` (from `filter_values`) as constants."""
    import tensorflow as tf

    layers = [layer for layer in convolutions(model) if layer in filters]
    variables = [layer._kernel for layer in layers]
    try:
        for layer in layers:
            # object.__setattr__: Keras' layer tracking must not see the swap
            # (it would list the constant, or the variable twice, as a weight).
            object.__setattr__(layer, "_kernel", tf.constant(filters[layer]))
        yield
    finally:
        for layer, variable in zip(layers, variables):
            object.__setattr__(layer, "_kernel", variable)
