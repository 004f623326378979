"""Convolution filters as graph constants in the serving signature (kerascnn.serving.constant_filters)."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from kerascnn.serving import constant_filters
from kerascnn.serving.constant_filters import convolutions, filter_values, filters_as_constants


def small_model(dtype=None):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", dtype=dtype, name="first")(inputs)
    inner_in = keras.Input((6, 6, 4))
    inner = keras.Model(inner_in, keras.layers.Conv2D(5, 3, groups=1, dtype=dtype, name="nested")(inner_in), name="block")
    x = inner(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", dtype=dtype, name="depthwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, dtype=dtype)(x))


def constants_of(concrete):
    """{shape: count} of the float constants a traced function's graph holds (its own and its functions')."""
    nodes = list(concrete.graph.as_graph_def().node)
    for function in concrete.graph.as_graph_def().library.function:
        nodes.extend(function.node_def)
    shapes = {}
    for node in nodes:
        if node.op == "Const" and node.attr["dtype"].type in (tf.float32.as_datatype_enum, tf.bfloat16.as_datatype_enum):
            shape = tuple(d.size for d in node.attr["value"].tensor.tensor_shape.dim)
            shapes[shape] = shapes.get(shape, 0) + 1
    return shapes


def test_convolutions_finds_plain_conv2d_layers_nested_models_included_and_nothing_else():
    model = small_model()
    assert [layer.name for layer in convolutions(model)] == ["first", "nested"]  # not the depthwise one
    filters = filter_values(model)
    for layer, value in filters.items():
        np.testing.assert_array_equal(value, layer.kernel.numpy())
    # A mixed-precision layer casts its variable as it reads it: a constant would skip the cast.
    assert convolutions(small_model("mixed_bfloat16")) == []
    lora = small_model()
    lora.get_layer("first").enable_lora(2)
    assert [layer.name for layer in convolutions(lora)] == ["nested"]
    # Past the size limit every filter stays a variable: a graph cannot pass protobuf's 2 GB.
    assert filter_values(model, max_bytes=4 * 4 * 3 * 3 * 3) == {} and len(filter_values(model)) == 2
    assert constant_filters.MAX_CONSTANT_BYTES < 2**31


def test_a_traced_call_reads_the_filters_as_constants_and_computes_the_same():
    keras.utils.set_random_seed(0)
    model = small_model()
    filters = filter_values(model)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    kernels_before = [layer._kernel for layer in convolutions(model)]

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def with_constants(images):
        with filters_as_constants(model, filters):
            return model(images, training=False)

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def with_variables(images):
        return model(images, training=False)

    np.testing.assert_allclose(with_constants(x).numpy(), with_variables(x).numpy(), rtol=1e-6, atol=1e-6)
    constants = constants_of(with_constants.get_concrete_function())
    assert constants.get((3, 3, 3, 4)) == 1 and constants.get((3, 3, 4, 5)) == 1
    assert (3, 3, 3, 4) not in constants_of(with_variables.get_concrete_function())
    # The layers have their variables back, and Keras' tracking never saw the constants.
    assert [layer._kernel for layer in convolutions(model)] == kernels_before
    assert len(model.weights) == 8 and all(isinstance(w, keras.Variable) for w in model.weights)
    # The constants are the values at trace time: a later change of the variables does not reach the traced graph.
    before = with_constants(x).numpy()
    layer = model.get_layer("first")
    layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
    np.testing.assert_array_equal(with_constants(x).numpy(), before)
    assert not np.allclose(with_variables(x).numpy(), before)


def test_the_layers_get_their_variables_back_when_the_call_fails():
    model = small_model()
    kernels = [layer._kernel for layer in convolutions(model)]
    with pytest.raises(ValueError):
        with filters_as_constants(model, filter_values(model)):
            assert all(isinstance(layer._kernel, tf.Tensor) for layer in convolutions(model))
            raise ValueError("the traced call failed")
    assert [layer._kernel for layer in convolutions(model)] == kernels


def test_an_export_carries_its_filters_in_the_graph_and_the_rest_in_variables(tmp_path):
    from kerascnn.data.preprocessing import Preprocessing
    from kerascnn.serving import export

    keras.utils.set_random_seed(1)
    model = small_model()
    prep = Preprocessing((8, 8), (120.0, 120.0, 120.0), (60.0, 60.0, 60.0))
    path = export.export_model(model, prep, ["a", "b", "c"], "m", tmp_path)
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    stored = sorted(tuple(shape) for key, shape in reader.get_variable_to_shape_map().items()
                    if key.endswith("VARIABLE_VALUE"))
    assert stored == sorted(tuple(w.shape) for w in model.weights
                            if not any(w is layer.kernel for layer in convolutions(model)))
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[export.SIGNATURE]
    constants = constants_of(signature)
    assert constants.get((3, 3, 3, 4)) == 1 and constants.get((3, 3, 4, 5)) == 1
    images = np.random.default_rng(2).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    want = tf.nn.softmax(model(prep(images), training=False)).numpy()
    np.testing.assert_allclose(signature(images=tf.constant(images))["probabilities"].numpy(), want, atol=1e-6)
