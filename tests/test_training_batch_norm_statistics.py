"""The batch-norm statistics pass (SWA's update_bn) on a tiny model, against numpy."""

import keras
import numpy as np

from kerascnn.layers import BatchNormalization
from kerascnn.training.batch_norm_statistics import StatisticsPass, batch_norm_layers

EPSILON = 1e-3


def tiny_model():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = BatchNormalization(epsilon=EPSILON, name="bn1")(x)  # the fused kernel
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(epsilon=EPSILON, name="bn2")(x)  # Keras' own
    x = keras.layers.GlobalAveragePooling2D()(x)
    frozen = keras.layers.BatchNormalization(name="frozen")
    frozen.trainable = False
    x = frozen(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_the_pass_sets_each_layers_statistics_to_the_mean_of_its_batch_statistics():
    keras.utils.set_random_seed(0)
    model = tiny_model()
    rng = np.random.default_rng(0)
    batches = [(rng.normal(1.0, 2.0, (6, 6, 6, 3)).astype("float32"), np.zeros(6)) for _ in range(3)]
    bn1, bn2, frozen = (model.get_layer(name) for name in ("bn1", "bn2", "frozen"))
    bn1.gamma.assign(rng.uniform(0.5, 2.0, 4)), bn1.beta.assign(rng.normal(0, 1, 4))
    for layer in (bn1, bn2, frozen):  # stale statistics, as the raw weights would leave
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 5.0))
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 7.0))
    weights = [w.copy() for w in model.get_weights() if w.ndim > 1]

    # Expected, from the first two batches only. bn1's input is conv1's output;
    # bn2's is conv2 of the ReLU of bn1 normalised by *its batch's* statistics.
    conv1 = keras.Model(model.input, model.get_layer("conv1").output)
    conv2 = model.get_layer("conv2")
    means1, vars1, means2, vars2 = [], [], [], []
    for x, _ in batches[:2]:
        h = keras.ops.convert_to_numpy(conv1(x)).astype(np.float64)
        m, v = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
        means1.append(m), vars1.append(v)
        gamma, beta = (keras.ops.convert_to_numpy(w) for w in (bn1.gamma, bn1.beta))
        y = np.maximum((h - m) / np.sqrt(v + EPSILON) * gamma + beta, 0.0)
        h2 = keras.ops.convert_to_numpy(conv2(y.astype("float32"))).astype(np.float64)
        means2.append(h2.mean(axis=(0, 1, 2))), vars2.append(h2.var(axis=(0, 1, 2)))

    statistics = StatisticsPass(model, batches, steps=2)
    assert statistics.layers == [bn1, bn2]  # the frozen layer keeps its statistics
    assert statistics() == 2
    for layer, means, variances in ((bn1, means1, vars1), (bn2, means2, vars2)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), np.mean(means, axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), np.mean(variances, axis=0), rtol=1e-4)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen.moving_mean), 5.0)
    for layer in (bn1, bn2):
        assert layer.momentum == 0.99  # restored
    for before, after in zip(weights, [w for w in model.get_weights() if w.ndim > 1]):
        np.testing.assert_array_equal(before, after)  # a forward pass only
    # Again (a new iterator over the same batches): the same statistics, not a further average.
    first = keras.ops.convert_to_numpy(bn2.moving_mean).copy()
    assert statistics() == 2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn2.moving_mean), first, rtol=1e-6)
    # A layer frozen since the last pass keeps its statistics; unfrozen, it joins the pass again.
    bn2.trainable = False
    bn2.moving_mean.assign(np.full(bn2.moving_mean.shape, 5.0))
    assert statistics.layers == [bn1] and statistics() == 2
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn2.moving_mean), 5.0)
    bn2.trainable = True
    assert statistics() == 2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn2.moving_mean), first, rtol=1e-6)
    # And the momentum the training step uses is the layer's own again.
    model(batches[2][0], training=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn1.moving_mean),
        0.99 * np.mean(means1, axis=0) + 0.01 * keras.ops.convert_to_numpy(conv1(batches[2][0])).mean(axis=(0, 1, 2)),
        rtol=1e-4, atol=1e-5,
    )


def test_nested_models_are_searched_and_a_model_without_batch_norm_needs_no_pass():
    inner = tiny_model()
    outer = keras.Sequential([keras.Input((6, 6, 3)), inner])
    assert [layer.name for layer in batch_norm_layers(outer)] == ["bn1", "bn2"]
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert StatisticsPass(plain, [np.zeros((1, 4))], 1)() == 0
