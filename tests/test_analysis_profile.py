"""Layer profile (`summary`): exact shapes, memory, parameters and MACs.

Every expected number is computed here by hand from the architecture
(output size n_out = floor((n_in + pads - k) / s) + 1, memory = elements x
4 bytes, parameters = k*k*C_in*C_out + C_out, MACs = H*W*C_out*k*k*C_in),
not by the code under test; two models are also checked against
TensorFlow's own profiler (float operations of its Conv2D and MatMul ops).
"""

import keras
import pytest

from kerascnn.analysis.macs import forward_macs
from kerascnn.analysis.profile import format_profile, profile_model
from kerascnn.models import create_model


def conv_out(n, k, s, pad_total=0):
    return (n + pad_total - k) // s + 1


@pytest.fixture(scope="module")
def alexnet_v2_227():
    model = create_model("alexnet_v2", input_shape=(227, 227, 3), num_classes=1000)
    yield model, profile_model(model)
    keras.backend.clear_session()


def alexnet_v2_expected():
    """conv/FC rows of alexnet_v2 at 227x227x3 with 1000 classes, by hand."""
    rows = {}
    n, c_in = 227, 3
    n = conv_out(n, 11, 4, pad_total=4)                       # ZeroPadding2D(2), 11x11/4 valid: 56
    layers = [("conv1", 11, 64, n)]
    n = conv_out(n, 3, 2)                                     # pool1 3x3/2 valid: 27
    layers.append(("conv2", 5, 192, n))                       # 5x5 same: 27
    n = conv_out(n, 3, 2)                                     # pool2: 13
    layers += [("conv3", 3, 384, n), ("conv4", 3, 256, n), ("conv5", 3, 256, n)]
    for name, k, c_out, size in layers:
        rows[name] = dict(
            shape=(size, size, c_out),
            kb=size * size * c_out * 4 / 1024,
            params=k * k * c_in * c_out + c_out,
            macs=size * size * c_out * k * k * c_in,
        )
        c_in = c_out
    n = conv_out(n, 3, 2)                                     # pool5: 6
    f_in = n * n * 256                                        # 9216
    for name, units in (("fc6", 4096), ("fc7", 4096), ("predictions", 1000)):
        rows[name] = dict(shape=(units,), kb=units * 4 / 1024, params=f_in * units + units, macs=f_in * units)
        f_in = units
    return rows


def test_alexnet_v2_at_227_every_conv_and_fc_layer_matches_the_hand_count(alexnet_v2_227):
    _, profile = alexnet_v2_227
    expected = alexnet_v2_expected()
    # The lecture figure quoted in the issue.
    assert expected["conv1"] == dict(shape=(56, 56, 64), kb=784.0, params=23_296, macs=72_855_552)
    for name, want in expected.items():
        row = profile.row(name)
        assert row.output_shape == want["shape"], name
        assert row.activation_kb == want["kb"], name
        assert row.params == want["params"], name
        assert row.macs == want["macs"], name
        assert row.flops == 2 * want["macs"], name
    assert profile.row("conv1").activation_bytes == 802_816
    assert profile.params == 61_100_840 == sum(w["params"] for w in expected.values())
    assert profile.macs == sum(w["macs"] for w in expected.values()) == 716_767_232
    # Pooling and reshaping layers hold no weights and multiply none.
    assert profile.row("pool5").macs == profile.row("pool5").params == 0


def test_memory_follows_the_dtype_and_views_are_not_counted_twice(alexnet_v2_227):
    model, profile = alexnet_v2_227
    half = profile_model(model, dtype="float16")
    assert half.row("conv1").activation_kb == 392.0
    assert half.activation_bytes * 2 == profile.activation_bytes
    assert not profile.row("flatten").allocates and not profile.row("fc6_dropout").allocates
    counted = sum(r.activation_bytes for r in profile.layers if r.kind not in ("Flatten", "Dropout"))
    assert profile.activation_bytes == counted


def test_vgg16_at_224_totals_add_up_to_its_parameter_count():
    model = create_model("vgg16", input_shape=(224, 224, 3), num_classes=1000)
    profile = profile_model(model)
    params = macs = 0
    n, c_in = 224, 3
    for convs, c_out in zip((2, 2, 3, 3, 3), (64, 128, 256, 512, 512)):
        for _ in range(convs):
            params += 9 * c_in * c_out + c_out
            macs += n * n * c_out * 9 * c_in
            c_in = c_out
        n //= 2
    f_in = n * n * 512
    for units in (4096, 4096, 1000):
        params += f_in * units + units
        macs += f_in * units
        f_in = units
    assert params == 138_357_544  # the published figure
    assert profile.params == params == model.count_params() == sum(r.params for r in profile.layers)
    assert profile.macs == macs == 15_470_264_320
    assert profile.flops == 2 * macs
    assert profile.row("block5_conv3").output_shape == (14, 14, 512)
    keras.backend.clear_session()


def test_grouped_convolutions_count_half_the_connections():
    # AlexNet's conv2 on two GPUs: 256 filters of 5x5x48 (Krizhevsky et al., Figure 2).
    model = create_model("alexnet", input_shape=(227, 227, 3), include_top=False)
    row = profile_model(model).row("conv2")
    assert row.output_shape == (27, 27, 256)
    assert row.params == 5 * 5 * 48 * 256 + 256
    assert row.macs == 27 * 27 * 256 * (5 * 5 * 96 // 2)
    assert "g2" in row.config
    keras.backend.clear_session()


def test_nested_models_are_expanded_and_depthwise_and_batch_norm_counted():
    inner_in = keras.Input((8, 8, 4))
    y = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(inner_in)
    y = keras.layers.BatchNormalization(name="bn")(y)
    inner = keras.Model(inner_in, y, name="block")
    x = keras.Input((8, 8, 4))
    z = inner(x)
    z = keras.layers.Conv2D(5, 1, name="pw")(z)
    model = keras.Model(x, z)
    profile = profile_model(model)
    assert [r.name for r in profile.layers][1:] == ["block/dw", "block/bn", "pw"]
    assert profile.row("block/dw").macs == 8 * 8 * 3 * 3 * 4 * 2
    assert profile.row("block/bn").params == 4 * 8 and profile.row("block/bn").macs == 0
    assert profile.row("pw").macs == 8 * 8 * 5 * 8
    assert profile.params == model.count_params()
    assert forward_macs(model) == profile.macs


def tensorflow_profiler_flops(model):
    """Float operations TensorFlow's profiler counts for the model's Conv2D and MatMul ops."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    shape = tuple(model.inputs[0].shape)[1:]
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *shape], tf.float32)
    )
    graph = convert_variables_to_constants_v2(fn).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    options["account_type_regexes"] = ["Conv2D", "MatMul"]
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("alexnet_v2", dict(input_shape=(67, 67, 3), num_classes=10)),   # convolutions, padding, FC
        ("resnet20", dict(num_classes=10)),                              # residual blocks, option-A shortcuts
    ],
)
def test_flops_agree_with_tensorflows_profiler(name, kwargs):
    # TensorFlow's profiler does not see into Keras' grouped convolutions
    # (they are not Conv2D ops); the grouped case is the hand count above.
    model = create_model(name, **kwargs)
    assert profile_model(model).flops == tensorflow_profiler_flops(model)
    keras.backend.clear_session()


def test_formats(alexnet_v2_227):
    _, profile = alexnet_v2_227
    md = format_profile(profile, "md")
    assert "| conv1 | Conv2D | 11x11/4 valid, 64 | 56x56x64 | 784 | 23,296 | 72,855,552 | 145,711,104 |" in md
    csv_lines = format_profile(profile, "csv").splitlines()
    assert csv_lines[0].startswith("layer,type,config,output_shape,activation_bytes")
    assert any(line.startswith('conv1,Conv2D,"11x11/4 valid, 64",56x56x64,802816,784.0,23296,23296,72855552,145711104')
               for line in csv_lines)
    assert csv_lines[-1].startswith("total,")
    import json

    data = json.loads(format_profile(profile, "json"))
    assert data["total"]["params"] == 61_100_840
    assert data["layers"][2]["layer"] == "conv1" and data["layers"][2]["macs"] == 72_855_552


def test_inception_modules_are_listed_branch_by_branch():
    model = create_model("googlenet", aux_logits=False)  # 224x224, 1000 classes
    profile = profile_model(model)
    # Inception 3a (Table 1) on the 28x28x192 output of pool2.
    n, c_in = 28, 192
    expected = {
        "inception_3a_1x1": (64, 1, c_in),
        "inception_3a_3x3_reduce": (96, 1, c_in),
        "inception_3a_3x3": (128, 3, 96),
        "inception_3a_5x5_reduce": (16, 1, c_in),
        "inception_3a_5x5": (32, 5, 16),
        "inception_3a_pool_proj": (32, 1, c_in),
    }
    for name, (c_out, k, fan_in) in expected.items():
        row = profile.row(name)
        assert row.output_shape == (n, n, c_out), name
        assert row.params == k * k * fan_in * c_out + c_out, name
        assert row.macs == n * n * c_out * k * k * fan_in, name
    assert profile.row("inception_3a_output").output_shape == (28, 28, 64 + 128 + 32 + 32)
    assert profile.row("inception_3a_output").macs == 0
    assert profile.params == model.count_params() == 6_998_552  # the paper's network, no aux heads
    keras.backend.clear_session()


def test_separable_and_transposed_convolutions():
    x = keras.Input((6, 6, 4))
    y = keras.layers.SeparableConv2D(8, 3, padding="same", name="sep")(x)          # depthwise + pointwise
    y = keras.layers.Conv2DTranspose(2, 2, strides=2, name="up")(y)                 # each input pixel x kernel
    profile = profile_model(keras.Model(x, y))
    assert profile.row("sep").macs == 6 * 6 * (3 * 3 * 4) + 6 * 6 * (4 * 8)
    assert profile.row("up").output_shape == (12, 12, 2)
    assert profile.row("up").macs == 6 * 6 * 8 * (2 * 2 * 2)
