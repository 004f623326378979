"""The coupled weight decay in the optimizer's update step (kerascnn.training.weight_decay)."""

import keras
import numpy as np
import pytest

from kerascnn.config import OptimConfig
from kerascnn.errors import ConfigError
from kerascnn.training.build import build_models
from kerascnn.training.weight_decay import decay_factors, decay_in_update, factors_of

TINY_ALEXNET = {"batch_norm": True, "width_multiplier": 0.125, "fc_units": 16, "dropout": 0.0}


def _conv_bn_head():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)  # with a bias
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x)))


def _batch(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, size, size, 3)).astype("float32"),
            keras.utils.to_categorical(rng.integers(0, 10, n), 10))


def test_decay_factors_name_every_kernel_and_with_norm_and_bias_every_bias_and_norm_parameter():
    model = _conv_bn_head()
    assert decay_factors(model, 1e-2) == {"conv/kernel": 1e-2, "head/kernel": 1e-2}
    assert decay_factors(model, 1e-2, norm_and_bias=True, offset_lr_scale=8.0) == {
        "conv/kernel": 1e-2, "conv/bias": 1e-2, "bn/gamma": 1e-2, "bn/beta": 1e-2 / 8, "head/kernel": 1e-2,
        "head/bias": 1e-2,
    }
    assert decay_factors(model, 0.0) == {}
    vgg, compiled, _ = build_models("vgg11", 3, (8, 8, 3), {"width_multiplier": 0.125, "dropout": 0.0},
                                    OptimConfig(weight_decay=5e-4), steps_per_epoch=1, epochs=1)
    # Every convolution and dense kernel (8 + 3), and nothing added to the loss or the saved config.
    assert len(factors_of(compiled.optimizer)) == 11
    assert vgg.losses == []
    assert vgg.get_layer("block1_conv1").get_config()["kernel_regularizer"] is None
    inputs = keras.Input((4,))
    with pytest.raises(ConfigError, match="no layer that weight decay can apply to"):
        decay_factors(keras.Model(inputs, keras.layers.Activation("relu")(inputs)), 1e-3)


@pytest.mark.parametrize("norm_and_bias", [False, True])
def test_the_decay_in_the_update_trains_exactly_as_the_l2_penalty_did(norm_and_bias):
    """Against the reference it replaced: Keras L2 regularisers wd/2 * ||v||^2 (wd/(2S) for beta) in the loss."""
    optim = OptimConfig(lr=0.05, nesterov=True, schedule="constant", weight_decay=0.02, bn_bias_lr_scale=4.0,
                        decay_norm_and_bias=norm_and_bias)
    keras.utils.set_random_seed(0)
    _, model, _ = build_models("alexnet_cifar", 10, (16, 16, 3), TINY_ALEXNET, optim, steps_per_epoch=1, epochs=1)
    keras.utils.set_random_seed(0)
    no_decay = OptimConfig(lr=0.05, nesterov=True, schedule="constant", weight_decay=0.0, bn_bias_lr_scale=4.0)
    network, reference, _ = build_models("alexnet_cifar", 10, (16, 16, 3), TINY_ALEXNET, no_decay,
                                         steps_per_epoch=1, epochs=1)
    factors = factors_of(model.optimizer)
    assert factors == decay_factors(network, 0.02, norm_and_bias, 4.0) and factors_of(reference.optimizer) == {}
    for variable in network.weights:
        if variable.path in factors:
            variable.regularizer = keras.regularizers.L2(factors[variable.path] / 2.0)
    assert len(network.losses) == len(factors)
    for a, b in zip(model.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for step in range(3):
        x, y = _batch(seed=step)
        model.train_on_batch(x, y)
        reference.train_on_batch(x, y)
    decayed = 0
    for a, b in zip(model.weights, reference.weights):
        # Equal to the last bit on the machines tried; a missing or doubled decay moves them by lr * wd (1e-3).
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9, err_msg=a.path)
        decayed += a.path in factors
    # 8 kernels; with norm and bias also 8 biases and 7 batch-norm layers' gamma and beta (none frozen here).
    assert decayed == len(factors) == (30 if norm_and_bias else 8)


def test_a_decayed_step_without_data_shrinks_each_weight_by_lr_wd_even_past_a_tight_clip():
    """beta at S x the rate decays by wd / S: lr * S * wd / S = lr * wd, as every other weight; frozen gammas do not.

    The data gradient is zero and --clip-norm tiny: the decay is added after clipping (PyTorch's order).
    """
    optim = OptimConfig(lr=0.1, momentum=0.0, schedule="constant", weight_decay=0.05, freeze_bn_scale=True,
                        bn_bias_lr_scale=4.0, decay_norm_and_bias=True, clip_norm=1e-6)
    network, model, _ = build_models("alexnet_cifar", 10, (16, 16, 3), TINY_ALEXNET, optim,
                                     steps_per_epoch=1, epochs=1)
    factors = factors_of(model.optimizer)
    assert {"conv1_bn/beta", "fc6_bn/beta", "predictions/bias", "conv1/kernel"} <= set(factors), sorted(factors)
    assert factors["conv1_bn/beta"] == pytest.approx(0.05 / 4)
    beta, kernel, gamma = (network.get_layer("conv1_bn").beta, network.get_layer("conv1").kernel,
                           network.get_layer("conv1_bn").gamma)
    beta.assign(np.full(beta.shape, 2.0, "float32"))
    before = kernel.numpy()
    model.optimizer.apply_gradients([(np.zeros(beta.shape, "float32"), beta),
                                     (np.zeros(kernel.shape, "float32"), kernel)])
    np.testing.assert_allclose(beta.numpy(), 2.0 * (1 - 0.1 * 0.05), rtol=1e-6)
    np.testing.assert_allclose(kernel.numpy(), before * (1 - 0.1 * 0.05), rtol=1e-6)
    assert not gamma.trainable and not any(v is gamma for v in model.trainable_variables)


def test_decay_in_update_without_factors_leaves_the_optimizer_as_it_was():
    optimizer = keras.optimizers.SGD(0.1)
    assert decay_in_update(optimizer, {}) is optimizer and "update_step" not in optimizer.__dict__
    assert factors_of(optimizer) == {}
