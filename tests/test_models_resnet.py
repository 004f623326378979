"""ResNet family: paper parameter counts, stems, shortcuts, pre-activation, saving."""

import keras
import numpy as np
import pytest

from kerascnn.errors import ConfigError
from kerascnn.models.resnet import ResNet
from kerascnn.models import create_model, model_description

RESNET_NAMES = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet20",
    "resnet56",
    "preact_resnet18",
]
PASS_THROUGH = (keras.layers.ReLU, keras.layers.ZeroPadding2D, keras.layers.MaxPooling2D)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def producer(tensor):
    """The layer that produced a symbolic tensor of a Functional model."""
    return tensor._keras_history[0]


def first_non_pass_through(layer):
    """Walk back from `layer`'s input past ReLU / padding / pooling layers."""
    source = producer(layer.input)
    while isinstance(source, PASS_THROUGH):
        source = producer(source.input)
    return source


def names(model):
    return [layer.name for layer in model.layers]


@pytest.fixture(scope="module")
def resnet50_224():
    return create_model("resnet50", num_classes=1000, input_shape=(224, 224, 3))


@pytest.fixture(scope="module")
def resnet18_224():
    return create_model("resnet18", num_classes=1000, input_shape=(224, 224, 3))


@pytest.fixture(scope="module")
def resnet20():
    return create_model("resnet20")


def test_every_variant_is_registered_with_a_description():
    for name in RESNET_NAMES:
        assert "ResNet" in model_description(name)
    assert "v1.5" in model_description("resnet50")
    assert "option A" in model_description("resnet20")


@pytest.mark.parametrize(
    "fixture, expected", [("resnet18_224", 11_689_512), ("resnet50_224", 25_557_032)]
)
def test_torchvision_parameter_counts_at_224(request, fixture, expected):
    model = request.getfixturevalue(fixture)
    assert trainable_count(model) == expected
    # Everything else is batch-norm moving statistics.
    non_trainable = model.non_trainable_weights
    assert all(w.path.endswith(("moving_mean", "moving_variance")) for w in non_trainable)
    bn_channels = sum(
        l.gamma.shape[0] for l in model.layers if isinstance(l, keras.layers.BatchNormalization)
    )
    assert model.count_params() == expected + 2 * bn_channels


@pytest.mark.parametrize("name, expected", [("resnet34", 21_797_672), ("resnet101", 44_549_160)])
def test_torchvision_parameter_counts_of_the_other_depths(name, expected):
    assert trainable_count(create_model(name)) == expected


@pytest.mark.parametrize("name, paper_millions", [("resnet20", 0.27), ("resnet56", 0.85)])
def test_cifar_parameter_counts_match_table_6(name, paper_millions):
    # Table 6 rounds to 0.01M.
    assert round(trainable_count(create_model(name)) / 1e6, 2) == paper_millions


def test_resnet20_count_is_the_convolutions_bn_and_classifier_only(resnet20):
    # 3x3 convs: stem 3->16, 6x 16->16, 16->32 + 5x 32->32, 32->64 + 5x 64->64;
    # BN (gamma, beta) after each of the 19 convs; FC 64->10. Option A adds nothing.
    convs = 9 * (3 * 16 + 6 * 16 * 16 + 16 * 32 + 5 * 32 * 32 + 32 * 64 + 5 * 64 * 64)
    bns = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    assert trainable_count(resnet20) == convs + bns + 64 * 10 + 10 == 269_722


def test_layer_names_follow_keras_applications(resnet50_224):
    present = set(names(resnet50_224))
    for expected in (
        "conv1_conv", "conv1_bn", "conv1_relu", "pool1_pool",
        "conv2_block1_0_conv", "conv2_block1_0_bn", "conv2_block1_1_conv", "conv2_block1_3_bn",
        "conv2_block1_add", "conv2_block1_out", "conv3_block1_2_pad", "conv5_block3_out",
        "avg_pool", "predictions",
    ):  # fmt: skip
        assert expected in present
    assert "conv5_block4_out" not in present
    assert all(not l.use_bias for l in resnet50_224.layers if isinstance(l, keras.layers.Conv2D))


def test_bottleneck_strides_the_3x3_convolution_v1_5(resnet50_224):
    assert resnet50_224.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert resnet50_224.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert resnet50_224.get_layer("conv3_block1_0_conv").strides == (2, 2)


def test_imagenet_stem_at_224_ends_at_7x7(resnet18_224):
    assert isinstance(resnet18_224.get_layer("pool1_pool"), keras.layers.MaxPooling2D)
    assert resnet18_224.get_layer("conv1_conv").kernel_size == (7, 7)
    assert resnet18_224.get_layer("conv5_block2_out").output.shape[1:] == (7, 7, 512)


@pytest.mark.parametrize(
    "size, stem, pooled",
    [
        (32, "auto", False),
        (64, "auto", False),
        (65, "auto", True),
        (32, "imagenet", True),
        (96, "cifar", False),
    ],
)
def test_stem_selection(size, stem, pooled):
    model = create_model(
        "resnet18",
        input_shape=(size, size, 3),
        stem=stem,
        include_top=False,
        width_multiplier=0.125,
    )
    has_pool = any(isinstance(l, keras.layers.MaxPooling2D) for l in model.layers)
    assert has_pool == pooled
    assert model.get_layer("conv1_conv").kernel_size == ((7, 7) if pooled else (3, 3))
    expected_side = -(-size // 32) if pooled else -(-size // 8)
    assert model.output_shape == (None, expected_side, expected_side, 64)


def test_strided_layers_pad_symmetrically_as_torchvision():
    # torchvision pads p on every side, out = floor((n + 2p - k) / s) + 1.
    model = create_model(
        "resnet50", input_shape=(97, 75, 3), include_top=False, width_multiplier=0.125
    )
    assert model.output_shape == (None, 4, 3, 256)
    assert model.get_layer("conv1_pad").padding == ((3, 3), (3, 3))
    assert model.get_layer("pool1_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("conv3_block1_2_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("conv3_block1_2_conv").padding == "valid"


def _blocks(model):
    return [l.name[: -len("_add")] for l in model.layers if l.name.endswith("_add")]


@pytest.mark.parametrize("fixture", ["resnet18_224", "resnet50_224"])
def test_projection_shortcut_exactly_where_the_shape_changes(request, fixture):
    model = request.getfixturevalue(fixture)
    present = set(names(model))
    projected = []
    for block in _blocks(model):
        block_in = model.get_layer(f"{block}_1_conv").input.shape
        block_out = model.get_layer(f"{block}_add").output.shape
        has_projection = f"{block}_0_conv" in present
        assert has_projection == (block_in != block_out), block
        if has_projection:
            projected.append(block)
            assert f"{block}_0_bn" in present
    expected = ["conv3_block1", "conv4_block1", "conv5_block1"]
    assert projected == (expected if fixture == "resnet18_224" else ["conv2_block1"] + expected)


def test_option_a_shortcut_is_a_subsampled_zero_padded_identity(resnet20):
    convs = [l.name for l in resnet20.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 19 and not any("_0_" in name for name in convs)
    block_in = resnet20.get_layer("conv2_block3_out").output
    shortcut = producer(resnet20.get_layer("conv3_block1_add").input[0])
    probe = keras.Model(resnet20.input, [block_in, shortcut.output])
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    inside, short = (np.asarray(t) for t in probe(x, training=False))
    assert short.shape == (2, 16, 16, 32)
    np.testing.assert_array_equal(short[..., :16], inside[:, ::2, ::2, :])
    assert not short[..., 16:].any()


def test_projection_option_for_the_cifar_networks():
    model = create_model("resnet20", shortcut="projection")
    assert {"conv3_block1_0_conv", "conv4_block1_0_conv"} <= set(names(model))
    assert trainable_count(model) == 269_722 + 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


def test_zero_pad_option_for_the_imagenet_networks():
    model = create_model(
        "resnet50", input_shape=(32, 32, 3), shortcut="zero_pad", width_multiplier=0.125
    )
    assert "conv2_block1_0_conv" not in names(model)
    assert model(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 1000)


def test_preact_blocks_put_batch_norm_before_each_first_convolution():
    model = create_model("preact_resnet18", num_classes=10, input_shape=(32, 32, 3))
    plain = create_model(
        "resnet18", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.125
    )
    for block in _blocks(model):
        before = first_non_pass_through(model.get_layer(f"{block}_1_conv"))
        assert isinstance(before, keras.layers.BatchNormalization), block
        # Nothing after the addition: the next block reads the raw sum.
        assert f"{block}_out" not in names(model)
    # The first block reuses the stem's activation (ECCV paper, section 4).
    assert first_non_pass_through(model.get_layer("conv2_block1_1_conv")).name == "conv1_bn"
    assert (
        first_non_pass_through(model.get_layer("conv3_block1_1_conv")).name
        == "conv3_block1_preact_bn"
    )
    # Shape-changing shortcuts project the activated input, without their own BN.
    assert producer(model.get_layer("conv3_block1_0_conv").input).name == "conv3_block1_preact_relu"
    assert "conv3_block1_0_bn" not in names(model)
    assert first_non_pass_through(model.get_layer("avg_pool")).name == "post_bn"
    # In the original blocks the first convolution reads the ReLU of the sum.
    for block in _blocks(plain)[1:]:
        assert isinstance(
            first_non_pass_through(plain.get_layer(f"{block}_1_conv")), keras.layers.Add
        )


def test_one_training_step_gives_a_finite_loss():
    keras.utils.set_random_seed(0)
    model = create_model("resnet18", num_classes=10, input_shape=(32, 32, 3))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(4,))
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)


@pytest.mark.parametrize("name", ["resnet20", "preact_resnet18"])
def test_keras_round_trip_gives_identical_outputs(tmp_path, name):
    model = create_model(name, num_classes=10, input_shape=(32, 32, 3))
    rng = np.random.default_rng(2)
    # Non-default batch-norm statistics so the round trip has to carry them.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe mode: built-in layers only
    x = rng.normal(size=(3, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False))
    )
    assert loaded.name == name


def test_head_options():
    features = create_model("resnet20", include_top=False)
    assert features.output_shape == (None, 8, 8, 64)
    assert create_model("resnet20", include_top=False, pooling="avg").output_shape == (None, 64)
    assert create_model("resnet20", include_top=False, pooling="max").output_shape == (None, 64)
    model = create_model("resnet20", dropout=0.3)
    assert model.get_layer("top_dropout").rate == 0.3
    assert "top_dropout" not in names(create_model("resnet20"))


def test_zero_init_residual_makes_every_block_start_as_its_shortcut():
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    plain = create_model("resnet20", width_multiplier=0.5)
    zeroed = create_model("resnet20", width_multiplier=0.5, zero_init_residual=True)
    last_bns = [layer for layer in zeroed.layers if layer.name.endswith("_2_bn")]
    assert len(last_bns) == 9  # one per basic block, the branch's second BN
    assert all(not np.any(layer.gamma.numpy()) for layer in last_bns)
    assert all(np.all(layer.gamma.numpy() == 1) for layer in plain.layers if layer.name.endswith("_1_bn"))
    # Each block's output is then ReLU(shortcut): the stem's activation, subsampled and zero-padded.
    stem = keras.Model(zeroed.input, zeroed.get_layer("conv1_relu").output)(images).numpy()
    feature = keras.Model(zeroed.input, zeroed.get_layer("conv4_block3_out").output)(images).numpy()
    width = stem.shape[-1]
    np.testing.assert_allclose(feature[..., :width], stem[:, ::4, ::4, :], rtol=1e-5, atol=1e-6)
    assert feature.shape[-1] > width and not np.any(feature[..., width:])
    preact = create_model("preact_resnet18", input_shape=(32, 32, 3), zero_init_residual=True, width_multiplier=0.25)
    assert not np.any(preact.get_layer("conv2_block1_2_conv").kernel.numpy())


def test_width_multiplier_scales_the_stem_and_every_stage():
    model = create_model("resnet50", input_shape=(32, 32, 3), width_multiplier=0.25)
    assert model.get_layer("conv1_conv").filters == 16
    assert model.get_layer("conv2_block1_3_conv").filters == 64
    assert model.get_layer("conv5_block3_3_conv").filters == 512
    assert model.get_layer("predictions").units == 1000


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = create_model("resnet20")
        assert model.get_layer("conv4_block1_0_pad").compute_dtype == "bfloat16"
        assert model(np.zeros((1, 32, 32, 3), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_norm": False}, "always use batch normalisation"),
        ({"stem": "tiny"}, "stem must be"),
        ({"shortcut": "C"}, "shortcut must be"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_classes": 0}, "num_classes"),
        ({"input_shape": (32, 32)}, "input_shape"),
        ({"width_multiplier": 0}, "width_multiplier"),
        ({"include_top": False, "pooling": "sum"}, "pooling"),
        ({"preact": True}, "no option preact"),
    ],
)
def test_bad_builder_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model("resnet18", **{"input_shape": (32, 32, 3), **kwargs})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"stackwise_blocks": (2, 2), "block": "dense"}, "block must be"),
        ({"stackwise_blocks": ()}, "stackwise_blocks"),
        ({"stackwise_blocks": (2, 0, 2, 2)}, "stackwise_blocks"),
        ({"stackwise_blocks": (2, 2), "stage_widths": (64, 128, 256)}, "stage_widths"),
        (
            {"stackwise_blocks": (1, 1), "stage_widths": (64, 32), "shortcut": "zero_pad"},
            "cannot reduce",
        ),
    ],
)
def test_bad_family_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ResNet(input_shape=(32, 32, 3), **kwargs)
