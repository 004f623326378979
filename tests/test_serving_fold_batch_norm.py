"""Batch norm folded into the convolution or dense layer before it: same function, fewer layers."""

import keras
import numpy as np
import pytest

from kerascnn.models import create_model
from kerascnn.serving.fold_batch_norm import fold_batch_norm, foldable_pairs
from kerascnn.testing import randomize_batch_norms


def _batch_norms(model):
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _same_function(model, folded, shape, seed=1):
    x = np.random.default_rng(seed).normal(0, 1, (3, *shape)).astype("float32")
    expected = model(x, training=False).numpy()
    got = folded(x, training=False).numpy()
    scale = float(np.max(np.abs(expected)))
    assert np.max(np.abs(got - expected)) <= 1e-5 * scale, np.max(np.abs(got - expected)) / scale


@pytest.mark.parametrize("name, options, left", [
    # Conv -> BN -> ReLU and Dense -> BN -> ReLU: all seven fold.
    ("alexnet_cifar", {"batch_norm": True, "width_multiplier": 0.125, "fc_units": 16}, 0),
    # Post-activation residual blocks: every BN follows a convolution (the last one feeds the addition).
    ("resnet20", {"width_multiplier": 0.5}, 0),
    # Pre-activation: the BNs before each block's first convolution follow an addition (or the stem's
    # convolution, which also feeds the shortcut) and stay.
    ("preact_resnet18", {"width_multiplier": 0.125}, None),
])
def test_folded_models_compute_the_same_function_without_the_folded_layers(name, options, left):
    model = randomize_batch_norms(create_model(name, num_classes=10, input_shape=(32, 32, 3), **options))
    before = [w.copy() for w in model.get_weights()]
    folded, count = fold_batch_norm(model)
    _same_function(model, folded, (32, 32, 3))
    remaining = _batch_norms(folded)
    assert count == len(_batch_norms(model)) - len(remaining) > 0
    if left is not None:
        assert len(remaining) == left
    else:
        assert remaining and set(remaining) < set(_batch_norms(model))
    for name_ in foldable_pairs(model):
        layer = folded.get_layer(name_)
        assert layer.use_bias and layer.bias is not None
    # The model it came from is untouched: same weights, same layers.
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert len(model.get_weights()) > len(folded.get_weights())


def _tiny(shared=False, activation=None, center=True, scale=True, use_bias=True):
    inputs = keras.Input((6, 6, 2))
    z = keras.layers.Conv2D(4, 3, padding="same", activation=activation, use_bias=use_bias, name="conv")(inputs)
    y = keras.layers.BatchNormalization(center=center, scale=scale, name="bn")(z)
    if shared:  # the convolution's output also feeds the addition: the BN cannot absorb it
        y = keras.layers.Add(name="add")([y, z])
    y = keras.layers.ReLU(name="relu")(y)
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(y))
    return randomize_batch_norms(keras.Model(inputs, outputs))


@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"scale": False}, {"use_bias": False}])
def test_a_batch_norm_folds_with_or_without_its_own_offset_scale_and_the_conv_bias(kwargs):
    model = _tiny(**kwargs)
    folded, count = fold_batch_norm(model)
    assert count == 1 and "bn" not in [layer.name for layer in folded.layers]
    _same_function(model, folded, (6, 6, 2))


@pytest.mark.parametrize("kwargs", [{"shared": True}, {"activation": "relu"}])
def test_a_batch_norm_that_is_not_the_only_linear_map_after_its_layer_stays(kwargs):
    model = _tiny(**kwargs)
    folded, count = fold_batch_norm(model)
    assert count == 0 and folded is model


def test_a_model_without_batch_norm_or_not_functional_comes_back_as_it_is():
    plain = create_model("alexnet_cifar", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.125,
                         fc_units=16)
    assert fold_batch_norm(plain) == (plain, 0)
    sequential = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(2, 3),
                                   keras.layers.BatchNormalization()])
    assert fold_batch_norm(sequential) == (sequential, 0)
