"""`--batch-size auto`: the largest power-of-two batch that trains on the device.

A batch fits when one real training step (forward, backward, optimizer
update) at that size runs without the allocator giving up. Searching down
from `LARGEST` by halving finds the answer in at most log2(LARGEST) tries;
each try builds a fresh model so that a failed, larger attempt leaves no
memory behind.
"""

import gc

import keras
import numpy as np
import tensorflow as tf

from kerascnn.errors import UserError

LARGEST = 1024
SMALLEST = 1


class OutOfMemory(UserError):
    """Training ran out of accelerator (or host) memory."""


def out_of_memory_message(model_name, input_shape, batch_size, replicas):
    h, w = input_shape[:2]
    per = f"{batch_size} per replica x {replicas} replicas" if replicas > 1 else f"{batch_size}"
    smaller = max(1, batch_size // 2)
    return (
        f"out of memory training {model_name} at {h}x{w} with batch {per}; try --batch-size {smaller}, "
        "--precision mixed_float16 (GPU) or mixed_bfloat16, or --batch-size auto"
    )


def is_out_of_memory(error):
    return isinstance(error, (tf.errors.ResourceExhaustedError, MemoryError))


def try_step(build_and_compile, input_shape, num_classes, batch_size, strategy):
    """Run one training step at `batch_size` per replica; True if it fits in memory."""
    global_batch = batch_size * strategy.num_replicas_in_sync
    x = np.zeros((global_batch, *input_shape), np.float32)
    y = np.zeros((global_batch, num_classes), np.float32)
    y[:, 0] = 1.0
    dataset = tf.data.Dataset.from_tensors((x, y))
    policy = keras.mixed_precision.global_policy()
    try:
        with strategy.scope():
            model = build_and_compile()
        model.fit(dataset, epochs=1, verbose=0)
        return True
    except Exception as e:  # noqa: BLE001 - only memory errors are an answer; others re-raise
        if is_out_of_memory(e):
            return False
        raise
    finally:
        # clear_session frees the failed attempt, but also resets Keras'
        # global state, the mixed-precision policy included: put it back.
        keras.backend.clear_session(free_memory=True)
        keras.mixed_precision.set_global_policy(policy)
        gc.collect()


def find_batch_size(build_and_compile, input_shape, num_classes, strategy, largest=LARGEST, log=print):
    """The largest power of two <= `largest` whose training step fits (per replica).

    Args:
        build_and_compile: builds and compiles the run's training model
            (called inside `strategy.scope()`).
        input_shape, num_classes: of the model.
        strategy: the run's tf.distribute strategy.
    """
    batch = largest
    while batch >= SMALLEST:
        if try_step(build_and_compile, input_shape, num_classes, batch, strategy):
            log(f"--batch-size auto: {batch} per replica fits")
            return batch
        log(f"--batch-size auto: {batch} per replica is out of memory, halving")
        batch //= 2
    raise OutOfMemory("even a batch of 1 does not fit in memory; try --precision mixed_float16 or a smaller --image-size")
