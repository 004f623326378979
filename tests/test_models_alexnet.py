import keras
import numpy as np
import pytest

from kerascnn.errors import ConfigError
from kerascnn.layers import LocalResponseNormalization
from kerascnn.models import create_model


def spatial(model, name):
    return tuple(model.get_layer(name).output.shape[1:3])


@pytest.mark.parametrize("name, shape, expected", [
    ("alexnet", (227, 227, 3), 60_965_224),
    ("alexnet_v2", (224, 224, 3), 61_100_840),
])
def test_published_parameter_counts(name, shape, expected):
    assert create_model(name, num_classes=1000, input_shape=shape).count_params() == expected


def test_paper_alexnet_layout_two_towers_lrn_before_pooling():
    model = create_model("alexnet")
    assert [spatial(model, n) for n in ("conv1", "pool1", "pool2", "pool5")] == [(55, 55), (27, 27), (13, 13), (6, 6)]
    assert [model.get_layer(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    names = [layer.name for layer in model.layers]
    assert names.index("conv1") < names.index("norm1") < names.index("pool1")
    assert names.index("conv2") < names.index("norm2") < names.index("pool2")
    assert not any(n.startswith("norm") for n in names[names.index("pool2"):])
    norm = model.get_layer("norm1")
    assert isinstance(norm, LocalResponseNormalization)
    assert (norm.size, norm.k, norm.alpha, norm.beta) == (5, 2.0, 1e-4, 0.75)
    # Each tower (GPU) normalises its own half of the maps: 48 + 48, then 128 + 128.
    assert model.get_layer("norm1").groups == model.get_layer("norm2").groups == 2


def test_one_tower_and_no_lrn_options():
    model = create_model("alexnet", towers=1, use_lrn=False)
    assert all(model.get_layer(f"conv{i}").groups == 1 for i in range(1, 6))
    assert not any(isinstance(l, LocalResponseNormalization) for l in model.layers)
    with pytest.raises(ConfigError):
        create_model("alexnet", towers=3)
    # One tower: one LRN window over all channels, as in the other variants.
    one = create_model("alexnet", towers=1, num_classes=10, input_shape=(67, 67, 3))
    assert one.get_layer("norm1").groups == one.get_layer("norm2").groups == 1
    assert create_model("zfnet", num_classes=10, input_shape=(67, 67, 3)).get_layer("norm1").groups == 1


def test_paper_initialisation_biases_one_in_conv2_conv4_conv5_and_hidden_fc():
    model = create_model("alexnet", num_classes=10, input_shape=(67, 67, 3))
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.name != "predictions":
            expected = 1.0 if layer.name in ones else 0.0
            assert np.all(layer.bias.numpy() == expected), layer.name
    assert np.std(model.get_layer("fc6").kernel.numpy()) == pytest.approx(0.01, rel=0.05)
    he = create_model("alexnet", num_classes=10, input_shape=(67, 67, 3), init="he_normal")
    assert np.all(he.get_layer("conv2").bias.numpy() == 0)


def test_thin_alexnet_scales_the_convolutions_keeps_the_towers_even_and_sets_the_fc_width():
    model = create_model("alexnet", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.3, fc_units=256)
    # 96, 256, 384, 384, 256 times 0.3 is 28.8, 76.8, 115.2, 115.2, 76.8: rounded, then up to a multiple of
    # the two towers, so each grouped layer still splits into equal halves.
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 6)] == [30, 78, 116, 116, 78]
    assert [model.get_layer(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [model.get_layer(n).units for n in ("fc6", "fc7", "predictions")] == [256, 256, 10]
    assert model.count_params() == 311_844  # of the full width's 20,209,034 at 32x32
    cifar = create_model("alexnet_cifar", fc_units=512)
    assert [cifar.get_layer(n).units for n in ("fc6", "fc7")] == [512, 512]
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="fc_units must be a positive integer"):
            create_model("zfnet", fc_units=bad)


def test_zfnet_keeps_more_resolution_in_its_first_layers():
    model = create_model("zfnet")
    assert model.get_layer("conv1").kernel_size == (7, 7) and model.get_layer("conv1").strides == (2, 2)
    assert [spatial(model, n) for n in ("conv1", "pool1", "conv2", "pool2", "pool5")] == [
        (110, 110), (55, 55), (26, 26), (13, 13), (6, 6)
    ]


def test_alexnet_cifar_switches_are_independent():
    plain = create_model("alexnet_cifar")
    assert spatial(plain, "pool5") == (4, 4) and plain.get_layer("fc6").units == 4096
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in plain.layers)
    bn_only = create_model("alexnet_cifar", batch_norm=True, dropout=0.0)
    assert any(isinstance(l, keras.layers.BatchNormalization) for l in bn_only.layers)
    assert not any(isinstance(l, keras.layers.Dropout) for l in bn_only.layers)


def test_alexnet_cifar_logit_scale_multiplies_the_logits_of_the_same_weights():
    plain = create_model("alexnet_cifar", batch_norm=True, width_multiplier=0.125)
    scaled = create_model("alexnet_cifar", batch_norm=True, width_multiplier=0.125, logit_scale=0.125)
    assert plain.count_params() == scaled.count_params()  # a reparametrisation: no new weights
    scaled.set_weights(plain.get_weights())
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(scaled(images), 0.125 * plain(images).numpy(), rtol=1e-5, atol=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(scaled))
    restored.set_weights(scaled.get_weights())
    np.testing.assert_allclose(restored(images), scaled(images), rtol=1e-6)
    with pytest.raises(ConfigError, match="logit_scale must be a positive number"):
        create_model("alexnet_cifar", logit_scale=0)


def test_alexnet_cifar_dirac_start_passes_each_convolutions_input_through_its_first_filters():
    model = create_model("alexnet_cifar", batch_norm=True, width_multiplier=0.25, fc_units=16, conv_init="dirac")
    for i in range(1, 6):
        kernel = model.get_layer(f"conv{i}").kernel.numpy()
        c_in = kernel.shape[2]
        n = min(c_in, kernel.shape[3])
        # the first n filters: 1 at the centre tap of their own input channel, 0 everywhere else
        identity = np.zeros(kernel.shape[:3] + (n,), "float32")
        identity[1, 1, np.arange(n), np.arange(n)] = 1.0
        np.testing.assert_array_equal(kernel[..., :n], identity)
        # the rest (none where C_out = C_in: conv4, conv5): PyTorch's default draw, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        rest = kernel[..., n:]
        bound = 1.0 / np.sqrt(9 * c_in)
        assert rest.size == 0 if i > 3 else bound >= np.abs(rest).max() > 0.9 * bound, f"conv{i}"
    other = create_model("alexnet_cifar", batch_norm=True, width_multiplier=0.25, fc_units=16)
    assert other.get_layer("conv2").kernel.numpy()[1, 1, 0, 0] != 1.0  # the default start has no identity
    with pytest.raises(ConfigError, match="conv_init must be one of"):
        create_model("alexnet_cifar", conv_init="identity")


def test_vgg8_has_one_convolution_per_stage():
    model = create_model("vgg8", num_classes=10, input_shape=(32, 32, 3))
    convs = [l.name for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs == [f"block{i}_conv1" for i in range(1, 6)]
