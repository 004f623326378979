"""Training-memory estimate (`kerascnn.analysis.memory`): the formula on a network counted by hand.

The network: 10 inputs -> Dense(5) -> BatchNormalization -> Dense(2).
    parameters P = (10*5 + 5) + 4*5 + (5*2 + 2) = 55 + 20 + 12 = 87
    trainable  T = 87 - 10 (batch norm's moving mean and variance) = 77
    activations per image A = (10 + 5 + 5 + 2) elements x 4 B = 88 B (float32)
SGD with momentum keeps s = 1 slot, so
    F - R = 4 x (87 + 77 x 2) = 964 B,  m = 2 x 88 = 176 B per image.
The optimizer slot table is also checked against the variables Keras' own
optimizers make, as `training.optim.build_optimizer` builds them.
"""

import keras
import numpy as np
import pytest

from kerascnn.analysis.memory import (
    GIB, RESERVE_BYTES, compute_dtype, estimate_training_memory, optimizer_slots, power_of_two_at_most,
)
from kerascnn.config import OptimConfig
from kerascnn.training.optim import build_optimizer


@pytest.fixture(scope="module")
def tiny():
    inputs = keras.Input((10,))
    x = keras.layers.Dense(5, name="fc1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(2, name="predictions")(x)
    yield keras.Model(inputs, outputs, name="tiny")
    keras.backend.clear_session()


def test_the_estimate_of_a_dense_network_is_the_hand_count(tiny):
    e = estimate_training_memory(tiny, "sgd", momentum=0.9, dtype="float32", reserve_bytes=0)
    assert (e.params, e.trainable_params, e.slots, e.activation_bytes) == (87, 77, 1, 88)
    assert (e.state_bytes, e.fixed_bytes, e.per_image_bytes) == (964, 964, 176)
    assert e.bytes(3) == 964 + 3 * 176
    # 2,000 B: (2000 - 964) // 176 = 5 images (5 x 176 = 880 <= 1,036 < 1,056), and 4 as a power of two.
    assert e.max_batch(2000) == 5 and power_of_two_at_most(5) == 4
    assert e.max_batch(963) == 0 and e.max_batch(964) == 0 and e.max_batch(964 + 176) == 1
    # Half-precision activations halve the per-image part only; the variables stay float32.
    half = estimate_training_memory(tiny, "sgd", momentum=0.9, dtype=compute_dtype("mixed_bfloat16"),
                                    reserve_bytes=0)
    assert (half.state_bytes, half.per_image_bytes) == (964, 88)
    # Adam's two moments: 4 x (87 + 77 x 3) = 1,272 B, plus the 1 GiB reserve by default.
    adam = estimate_training_memory(tiny, "adam")
    assert adam.reserve_bytes == RESERVE_BYTES == GIB and adam.fixed_bytes == GIB + 1272
    assert adam.max_batch(8 * GIB) == (8 * GIB - GIB - 1272) // 176


@pytest.mark.parametrize("optimizer, momentum, ema", [
    ("sgd", 0.9, None), ("sgd", 0.0, None), ("adam", 0.9, None), ("adamw", 0.9, None), ("rmsprop", 0.9, None),
    ("sgd", 0.9, 0.99), ("adam", 0.9, 0.99),
])
def test_the_slot_table_counts_the_variables_keras_optimizers_make(tiny, optimizer, momentum, ema):
    config = OptimConfig(optimizer=optimizer, momentum=momentum, ema=ema, schedule="constant")
    opt = build_optimizer(config, steps_per_epoch=1, epochs=1)
    opt.build(tiny.trainable_variables)
    trainable = sum(int(np.prod(v.shape)) for v in tiny.trainable_variables)
    # Scalars are the step counter and the learning rate; every other variable is a slot, and so is
    # the step tensor fused RMSprop keeps outside the optimizer's variables.
    slot_elements = sum(int(np.prod(v.shape)) for v in opt.variables if len(v.shape))
    slot_elements += sum(int(np.prod(v.shape)) for v in getattr(opt, "fused_step_tensors", list)())
    assert slot_elements == optimizer_slots(optimizer, momentum, ema) * trainable


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="Received: optimizer='lamb'"):
        optimizer_slots("lamb")
    with pytest.raises(ValueError, match="Received: precision='auto'"):
        compute_dtype("auto")
    assert power_of_two_at_most(0) == 0 and power_of_two_at_most(1) == 1 and power_of_two_at_most(1023) == 512


def test_lookahead_counts_one_more_copy_of_each_weight_as_its_slow_weights_take(tiny):
    from kerascnn.training.lookahead import Lookahead

    tiny.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    tiny.optimizer.build(tiny.trainable_variables)
    lookahead = Lookahead(every=5, total_steps=10)
    lookahead.set_model(tiny)
    lookahead.on_train_begin()
    slow_elements = sum(int(np.prod(s.shape)) for s in lookahead._slow)
    assert slow_elements == 87  # every parameter, the 10 batch-norm statistics included
    assert optimizer_slots("sgd", 0.9, lookahead=5) == optimizer_slots("sgd", 0.9) + 1
    # The estimate counts the 77 trainable ones (T x s), not the 10 statistics: 40 B of 87 x 4 B.
    assert estimate_training_memory(tiny, "sgd", lookahead=5).state_bytes == 4 * (87 + 77 * 3)
