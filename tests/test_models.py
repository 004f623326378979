"""Registry-driven model tests: every registered model is checked automatically."""

import keras
import numpy as np
import pytest

from kerascnn.models.auxiliary import inference_model, training_model
from kerascnn.errors import ConfigError
from kerascnn.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_every_model_at_32x32_runs_trains_and_round_trips(name, tmp_path):
    network = create_model(name, num_classes=10, input_shape=(32, 32, 3))
    assert network.name == name
    # As fit() does: auxiliary classifiers (GoogLeNet) train, but are not inferred with.
    model = inference_model(network)
    # Logits, not probabilities: rows need not sum to one.
    assert model.get_layer("predictions").activation is keras.activations.linear
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(4) % 10, 10)

    trainer = training_model(network)
    # One step, run eagerly: the same train_step, gradients and update as in
    # a graph, without tracing it (ResNet-152: 15 CPU s traced, 5 eager). The
    # forward pass was already traced symbolically when the functional model
    # was built, and fit() runs graphs in the training tests.
    trainer.compile(
        keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True), run_eagerly=True
    )
    before = [w.numpy().copy() for w in network.trainable_weights[:2]]
    loss = trainer.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, network.trainable_weights[:2]))
    # One forward pass, after the step (a step that broke the model shows here): the shape, finite
    # values, and the reference for the reloaded copy. Each eager pass of the deep ResNets costs seconds.
    logits = model(x, training=False).numpy()
    assert logits.shape == (4, 10) and np.all(np.isfinite(logits))

    network.save(tmp_path / f"{name}.keras")
    reloaded = inference_model(keras.saving.load_model(tmp_path / f"{name}.keras", compile=False))
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), logits, atol=1e-5)


@pytest.mark.parametrize("name, expected", [("vgg16", 138_357_544), ("vgg19", 143_667_240)])
def test_paper_parameter_counts_at_224(name, expected):
    model = create_model(name, num_classes=1000, input_shape=(224, 224, 3))
    assert model.count_params() == expected
    assert model.get_layer("fc1").units == 4096


def test_layer_names_follow_keras_applications():
    model = create_model("vgg16", num_classes=10, input_shape=(32, 32, 3))
    names = [layer.name for layer in model.layers]
    for expected in ("block1_conv1", "block1_conv2", "block1_pool", "block5_conv3", "fc1", "fc2", "predictions"):
        assert expected in names
    assert "block5_conv4" not in names
    assert "block5_conv4" in [layer.name for layer in create_model("vgg19", input_shape=(32, 32, 3)).layers]


def test_batch_norm_variant_normalises_every_convolution():
    model = create_model("vgg11_bn", num_classes=10, input_shape=(32, 32, 3))
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(convs) == len(bns) == 8


def test_compact_head_for_small_inputs_paper_head_for_large():
    assert create_model("vgg11", input_shape=(32, 32, 3)).get_layer("fc1").units == 512
    assert create_model("vgg11", input_shape=(64, 64, 3)).get_layer("fc1").units == 4096
    assert create_model("vgg11", input_shape=(32, 32, 3), head="paper").get_layer("fc1").units == 4096


def test_any_input_size_including_sizes_not_divisible_by_32():
    model = create_model("vgg11", num_classes=3, input_shape=(28, 28, 3))
    assert model(np.zeros((1, 28, 28, 3), "float32")).shape == (1, 3)


def test_include_top_false_returns_the_feature_map_or_its_pooling():
    features = create_model("vgg13", input_shape=(64, 64, 3), include_top=False)
    assert features.output_shape == (None, 2, 2, 512)
    pooled = create_model("vgg13", input_shape=(64, 64, 3), include_top=False, pooling="avg")
    assert pooled.output_shape == (None, 512)


def test_width_multiplier_scales_the_convolutions_not_the_classifier():
    model = create_model("vgg11", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.25)
    assert model.get_layer("block1_conv1").filters == 16
    assert model.get_layer("block5_conv2").filters == 128
    assert model.get_layer("fc1").units == 512


@pytest.mark.parametrize(
    "kwargs",
    [{"dropout": 1.5}, {"num_classes": 0}, {"input_shape": (32, 32)}, {"head": "huge"}, {"width_multiplier": 0}],
)
def test_bad_builder_arguments_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        create_model("vgg11", **{"input_shape": (32, 32, 3), **kwargs})


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = create_model("vgg11", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.125)
        assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
        assert model(np.zeros((1, 32, 32, 3), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name, options", [
    ("vgg11_bn", {"num_classes": 10, "input_shape": (32, 32, 3), "width_multiplier": 0.125, "dropout": 0.0}),
    ("resnet20", {"width_multiplier": 0.25}),
])
def test_vgg_and_resnet_logit_scale_multiplies_the_logits_of_the_same_weights(name, options):
    plain = create_model(name, **options)
    scaled = create_model(name, logit_scale=0.125, **options)
    assert plain.count_params() == scaled.count_params()  # a reparametrisation: no new weights
    scaled.set_weights(plain.get_weights())
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(scaled(images), 0.125 * plain(images).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="logit_scale must be a positive number"):
        create_model(name, logit_scale=-1.0, **options)


def test_vgg_conv_init_fan_in_keeps_the_forward_variance_and_a_bad_name_is_refused():
    for mode, fan in (("fan_in", lambda k: k.shape[0] * k.shape[1] * k.shape[2]),
                      ("fan_out", lambda k: k.shape[0] * k.shape[1] * k.shape[3])):
        model = create_model("vgg11", num_classes=10, input_shape=(32, 32, 3), conv_init=mode, width_multiplier=0.5)
        kernel = model.get_layer("block3_conv1").kernel.numpy()  # 64 -> 128 channels at width 0.5
        assert np.std(kernel) == pytest.approx(np.sqrt(2.0 / fan(kernel)), rel=0.1), mode
    with pytest.raises(ConfigError, match="conv_init must be one of 'fan_out', 'fan_in', 'dirac'. Received: conv_init='glorot'"):
        create_model("vgg11", num_classes=10, input_shape=(32, 32, 3), conv_init="glorot")


def test_vgg_dirac_start_copies_each_convolutions_input_into_its_first_filters():
    model = create_model("vgg11_bn", num_classes=10, input_shape=(32, 32, 3), conv_init="dirac", width_multiplier=0.25)
    kernel = model.get_layer("block3_conv1").kernel.numpy()  # 32 -> 64 channels at width 0.25
    identity = np.zeros((3, 3, 32, 32), "float32")
    identity[1, 1, np.arange(32), np.arange(32)] = 1.0
    np.testing.assert_array_equal(kernel[..., :32], identity)
    assert 0 < np.abs(kernel[..., 32:]).max() <= 1.0 / np.sqrt(9 * 32)  # the rest: PyTorch's default draw


@pytest.mark.parametrize("name, options", [
    ("vgg16", {"width_multiplier": 0.125}),                          # fan-out convolutions, He dense
    ("vgg16", {"width_multiplier": 0.125, "conv_init": "fan_in"}),  # fan-in convolutions
    ("alexnet", {"width_multiplier": 0.125, "init": "paper"}),       # N(0, 0.01)
    ("googlenet_cifar", {}),                                          # its own fan-in convolutions
])
def test_initial_weights_follow_the_seed_and_no_two_layers_start_alike(name, options):
    # Keras 3 initializer instances fix their seed when created: one shared
    # instance gave same-shaped layers identical kernels and ignored the seed.
    def kernels(seed):
        keras.utils.set_random_seed(seed)
        model = create_model(name, num_classes=10, input_shape=(32, 32, 3), **options)
        return [w.numpy() for w in model.weights if w.path.endswith("kernel")]

    first, again, other = kernels(1), kernels(1), kernels(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))
    for i, a in enumerate(first):
        assert not any(a.shape == b.shape and np.array_equal(a, b) for b in first[i + 1:]), i
