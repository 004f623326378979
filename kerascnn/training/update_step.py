"""Wrapping a Keras optimizer's per-variable `update_step`, on every Keras backend.

kerascnn changes how an optimizer updates some variables (the weight decay,
the batch-norm offsets' rate, the whitening bias's epochs) by wrapping the
instance's `update_step(gradient, variable, learning_rate)`, which Keras'
TensorFlow and JAX optimizers call once per variable after clipping and,
under a distribution strategy, after the gradients are summed across
replicas. Keras' torch backend instead swaps in optimizer classes
(`keras/src/backend/torch/optimizers`) whose `_backend_update_step` updates
all variables at once with `torch._foreach_*` ops and never calls
`update_step`, so a wrapper there would silently do nothing. `wrap` puts such
an optimizer back on Keras' per-variable loop (`BaseOptimizer`'s own
`_backend_update_step`) before wrapping: slower on torch, but what it
computes is what the wrapper says.
"""

import types

from keras.src.optimizers.base_optimizer import BaseOptimizer


def wrap(optimizer, make_step):
    """Set `optimizer.update_step = make_step(current update_step)`, per variable on every backend; returned."""
    if hasattr(optimizer, "_parallel_update_step"):  # only Keras' torch optimizers have it
        optimizer._backend_update_step = types.MethodType(BaseOptimizer._backend_update_step, optimizer)
    optimizer.update_step = make_step(optimizer.update_step)
    return optimizer
