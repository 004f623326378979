"""--ema's average: warmed up over its first steps as tf.train.ExponentialMovingAverage does."""

import keras
import numpy as np

from kerascnn.config import RunConfig
from kerascnn.training.averaging import warm_up_average
from kerascnn.training.optim import build_optimizer


def test_the_average_copies_the_first_step_then_decays_at_min_of_decay_and_1_plus_t_over_10_plus_t():
    w = keras.Variable(np.zeros(3, "float32"))
    optimizer = warm_up_average(keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.9))
    optimizer.build([w])
    grads = [np.array([1.0, -2.0, 4.0], "float32") * (k + 1) for k in range(30)]
    expected = None
    for t, grad in enumerate(grads):
        optimizer.apply_gradients([(grad, w)])
        weights = keras.ops.convert_to_numpy(w)
        decay = 0.0 if t == 0 else min(0.9, (1 + t) / (10 + t))  # reaches 0.9 at t = 80: warm-up throughout
        expected = weights if expected is None else decay * expected + (1 - decay) * weights
        np.testing.assert_allclose(keras.ops.convert_to_numpy(optimizer._model_variables_moving_average[0]), expected, rtol=1e-5)


def test_build_optimizer_warms_up_the_average_of_an_ema_run_only():
    config = RunConfig.from_flags("vgg11", ema=0.999)
    optimizer = build_optimizer(config.optim, steps_per_epoch=10, epochs=2)
    assert "update_average" in optimizer._update_model_variables_moving_average.__qualname__
    plain = build_optimizer(RunConfig.from_flags("vgg11").optim, steps_per_epoch=10, epochs=2)
    assert "update_average" not in type(plain)._update_model_variables_moving_average.__qualname__
    assert "_update_model_variables_moving_average" not in vars(plain)
