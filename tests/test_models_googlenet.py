"""GoogLeNet (Szegedy et al. 2015): Table 1 layout, auxiliary heads, variants."""

import keras
import numpy as np
import pytest

from kerascnn.errors import ConfigError
from kerascnn.layers import LocalResponseNormalization
from kerascnn.models.googlenet import INCEPTION_BLOCKS
from kerascnn.models import create_model

BLOCKS = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
# Table 1, "depth"-wise output sizes of each inception module.
BLOCK_CHANNELS = {
    "3a": 256, "3b": 480, "4a": 512, "4b": 512, "4c": 512,
    "4d": 528, "4e": 832, "5a": 832, "5b": 1024,
}

# Parameters of `googlenet` at 224x224x3, 1000 classes, no auxiliary heads,
# from Table 1 by hand. A conv has k*k*in*out weights + out biases. An
# inception module with input `in` and widths (#1x1, #3x3r, #3x3, #5x5r,
# #5x5, pool proj) has in*(#1x1 + #3x3r + #5x5r + proj) + 9*#3x3r*#3x3
# + 25*#5x5r*#5x5 weights and #1x1 + #3x3r + #3x3 + #5x5r + #5x5 + proj biases.
#   conv1 7x7/2 3->64      49*3*64 + 64                               =     9,472
#   conv2 1x1 64->64       64*64 + 64                                 =     4,160
#   conv2 3x3 64->192      9*64*192 + 192                             =   110,784
#   3a (192)  192*208 + 9*96*128  + 25*16*32  = 163,328 + 368         =   163,696
#   3b (256)  256*352 + 9*128*192 + 25*32*96  = 388,096 + 640         =   388,736
#   4a (480)  480*368 + 9*96*208  + 25*16*48  = 375,552 + 624         =   376,176
#   4b (512)  512*360 + 9*112*224 + 25*24*64  = 448,512 + 648         =   449,160
#   4c (512)  512*344 + 9*128*256 + 25*24*64  = 509,440 + 664         =   510,104
#   4d (512)  512*352 + 9*144*288 + 25*32*64  = 604,672 + 704         =   605,376
#   4e (528)  528*576 + 9*160*320 + 25*32*128 = 867,328 + 1,024       =   868,352
#   5a (832)  832*576 + 9*160*320 + 25*32*128 = 1,042,432 + 1,024     = 1,043,456
#   5b (832)  832*752 + 9*192*384 + 25*48*128 = 1,442,816 + 1,264     = 1,444,080
#   predictions 1024*1000 + 1000                                      = 1,025,000
#   total                                                             = 6,998,552
# Cross-check against torchvision's 6,624,904: it has BN (gamma, beta per
# channel) instead of conv biases and 3x3 kernels in the "5x5" branches,
# 16 weights fewer per (#5x5r * #5x5) pair; sum(#5x5r * #5x5) = 23,808, so the
# same network with real 5x5 kernels has 6,624,904 + 16 * 23,808 = 7,005,832
# trainable parameters, which is what `batch_norm=True` gives.
GOOGLENET_PARAMS = 6_998_552
GOOGLENET_BN_TRAINABLE = 6_624_904 + 16 * 23_808
# Auxiliary heads at 224 (4x4 pooled maps): 1x1 conv in*128 + 128,
# FC 2048*1024 + 1024, FC 1024*1000 + 1000.
AUX1_PARAMS = 512 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000  # 3,188,840
AUX2_PARAMS = 528 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000  # 3,190,888


@pytest.fixture(scope="module")
def paper():
    """`googlenet` at 224x224x3, 1000 classes, with its auxiliary heads (built once)."""
    return create_model("googlenet")


def spatial(model, name):
    return tuple(model.get_layer(name).output.shape[1:3])


def test_parameter_count_from_table_1():
    plain = create_model("googlenet", aux_logits=False)
    assert plain.count_params() == GOOGLENET_PARAMS


def test_parameter_count_with_auxiliary_heads(paper):
    assert paper.count_params() == GOOGLENET_PARAMS + AUX1_PARAMS + AUX2_PARAMS == 13_378_280


def test_batch_norm_variant_matches_torchvision_but_for_the_5x5_kernels():
    model = create_model("googlenet", aux_logits=False, batch_norm=True)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == GOOGLENET_BN_TRAINABLE


def test_table_1_widths_and_output_channels(paper):
    assert [b.name for b in INCEPTION_BLOCKS] == list(BLOCKS)
    for block in INCEPTION_BLOCKS:
        assert block.n1x1 + block.n3x3 + block.n5x5 + block.pool_proj == BLOCK_CHANNELS[block.name]
    for name, channels in BLOCK_CHANNELS.items():
        assert paper.get_layer(f"inception_{name}_output").output.shape[-1] == channels


def test_spatial_sizes_at_224(paper):
    assert [spatial(paper, n) for n in ("conv1_7x7", "pool1", "pool2", "pool3", "pool4")] == [
        (112, 112), (56, 56), (28, 28), (14, 14), (7, 7)
    ]
    assert spatial(paper, "inception_3b_output") == (28, 28)
    assert spatial(paper, "inception_4e_output") == (14, 14)
    assert spatial(paper, "inception_5b_output") == (7, 7)


def test_every_5x5_branch_has_a_real_5x5_kernel_and_pool_branch_is_3x3_stride_1(paper):
    for name in BLOCKS:
        assert paper.get_layer(f"inception_{name}_5x5").kernel_size == (5, 5)
        assert paper.get_layer(f"inception_{name}_3x3").kernel_size == (3, 3)
        pool = paper.get_layer(f"inception_{name}_pool")
        assert isinstance(pool, keras.layers.MaxPooling2D)
        assert (pool.pool_size, pool.strides) == ((3, 3), (1, 1))
        assert isinstance(paper.get_layer(f"inception_{name}_output"), keras.layers.Concatenate)


def test_stem_layout_and_lrn(paper):
    names = [layer.name for layer in paper.layers]
    stem = ["conv1_7x7", "pool1", "norm1", "conv2_reduce", "conv2_3x3", "norm2", "pool2"]
    assert [names.index(n) for n in stem] == sorted(names.index(n) for n in stem)
    assert paper.get_layer("conv1_7x7").kernel_size == (7, 7)
    assert paper.get_layer("conv1_7x7").strides == (2, 2)
    assert paper.get_layer("conv2_reduce").filters == 64
    assert paper.get_layer("conv2_3x3").filters == 192
    assert isinstance(paper.get_layer("norm1"), LocalResponseNormalization)
    assert paper.get_layer("dropout").rate == pytest.approx(0.4)
    assert paper.get_layer("predictions").activation is keras.activations.linear
    convs = [l for l in paper.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs and all(c.activation is keras.activations.relu for c in convs)


def test_outputs_order_and_auxiliary_heads(paper):
    assert paper.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    assert isinstance(paper.outputs, list) and len(paper.outputs) == 3
    assert [t.shape[-1] for t in paper.outputs] == [1000, 1000, 1000]
    for prefix, block in (("aux1", "4a"), ("aux2", "4d")):
        pool = paper.get_layer(f"{prefix}_pool")
        assert pool.input is paper.get_layer(f"inception_{block}_output").output
        assert isinstance(pool, keras.layers.AveragePooling2D)
        assert (pool.pool_size, pool.strides) == ((5, 5), (3, 3))
        assert spatial(paper, f"{prefix}_pool") == (4, 4)
        assert paper.get_layer(f"{prefix}_conv").filters == 128
        assert paper.get_layer(f"{prefix}_fc").units == 1024
        assert paper.get_layer(f"{prefix}_dropout").rate == pytest.approx(0.7)
        head = paper.get_layer(f"{prefix}_predictions")
        assert head.activation is keras.activations.linear and head.dtype_policy.compute_dtype == "float32"
        # The final layer of each auxiliary output is the named Dense.
        assert paper.outputs[int(prefix[-1])] is head.output


def test_no_auxiliary_heads_without_aux_logits():
    model = create_model("googlenet", num_classes=10, input_shape=(32, 32, 3), aux_logits=False)
    assert not any(layer.name.startswith("aux") for layer in model.layers)
    assert model.output_names == ["predictions"] and len(model.outputs) == 1
    assert model(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 10)
    features = create_model("googlenet", input_shape=(64, 64, 3), include_top=False, pooling="avg")
    assert features.output_shape == (None, 1024)
    assert not any(layer.name.startswith("aux") for layer in features.layers)


def test_batch_norm_variant_has_bn_after_every_conv_and_no_lrn():
    model = create_model("googlenet", num_classes=10, input_shape=(32, 32, 3), batch_norm=True)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(convs) == len(bns) == 3 + 9 * 6 + 2
    assert all(not c.use_bias for c in convs)
    assert all(model.get_layer(f"{c.name}_bn").input is c.output for c in convs)
    assert (bns[0].momentum, bns[0].epsilon) == (0.9, 1e-5)
    assert not any(isinstance(l, LocalResponseNormalization) for l in model.layers)


def test_googlenet_cifar_keeps_resolution():
    model = create_model("googlenet_cifar")
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert not any(isinstance(l, LocalResponseNormalization) for l in model.layers)
    assert not any(l.name.startswith(("pool1", "pool2", "aux")) for l in model.layers)
    assert any(isinstance(l, keras.layers.BatchNormalization) for l in model.layers)
    stem = model.get_layer("conv1_3x3")
    assert (stem.filters, stem.kernel_size, stem.strides) == (192, (3, 3), (1, 1))
    assert spatial(model, "inception_3a_output") == (32, 32)
    assert spatial(model, "inception_3b_output") == (32, 32)
    assert spatial(model, "inception_4a_output") == (16, 16)
    assert spatial(model, "inception_5b_output") == (8, 8)
    with_aux = create_model("googlenet_cifar", aux_logits=True)
    assert with_aux.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    assert spatial(with_aux, "aux1_pool") == (4, 4)


def test_three_output_model_trains_and_round_trips(tmp_path):
    model = create_model("googlenet", num_classes=10, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical([1, 7], 10)
    model.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    assert np.all(np.isfinite(model.train_on_batch(x, [y, y, y])))
    path = tmp_path / "googlenet.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    assert reloaded.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    for before, after in zip(model(x, training=False), reloaded(x, training=False)):
        assert before.shape == (2, 10)
        np.testing.assert_allclose(after.numpy(), before.numpy(), rtol=1e-5, atol=1e-5)
    # What the training code exports: the main head alone.
    inference = keras.Model(reloaded.input, reloaded.outputs[0])
    np.testing.assert_allclose(
        inference(x).numpy(), model(x, training=False)[0].numpy(), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dropout": 1.5},
        {"num_classes": 0},
        {"input_shape": (32, 32)},
        {"aux_logits": "yes"},
        {"batch_norm": 1},
        {"include_top": False, "pooling": "huge"},
        {"input_shape": (None, None, 3)},
        {"width_multiplier": 0.5},
    ],
)
def test_bad_arguments_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        create_model("googlenet", **{"input_shape": (32, 32, 3), "num_classes": 10, **kwargs})


def test_variable_input_size_works_without_aux_logits():
    model = create_model("googlenet", num_classes=10, input_shape=(None, None, 3), aux_logits=False)
    assert model(np.zeros((1, 48, 40, 3), "float32")).shape == (1, 10)
