"""Phase 2: the runtime context, the one place a run changes process-wide state.

A run needs four settings that belong to the whole process, not to the run:
`TF_CONFIG` (the multi-worker cluster of `--workers`), the random seed, Keras'
global mixed-precision policy (`--precision`) and the tf.distribute strategy.
`runtime_context(plan)` sets them on entry and puts back what it can on
exit (the policy and TF_CONFIG), so a notebook, a tuner or the next test
that builds models after a run gets float32 models, not the run's bfloat16.
The strategy cannot be "unset"; the seed is re-drawn by whoever needs one.
"""

import contextlib
import dataclasses
import os

import keras

from kerascnn.runtime.strategies import is_chief, select_strategy, workers_tf_config


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The strategy a run trains under.

    Attributes:
        strategy: the tf.distribute strategy.
        description: how it was chosen, for the log and the run record.
        replicas: replicas in sync (the global batch is the per-replica batch times this).
        chief: whether this process writes the run directory (always, outside multi-worker).
    """

    strategy: object
    description: str
    replicas: int
    chief: bool

    def scope(self):
        return self.strategy.scope()


@contextlib.contextmanager
def _environment(name, value):
    """Set `os.environ[name]` to `value` (None leaves it alone) and restore it on exit."""
    if value is None:
        yield
        return
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def precision_policy(precision):
    """Keras' global dtype policy set to `precision`, the caller's restored on exit."""
    saved = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(saved)


def choose_strategy(plan):
    """(strategy, description) of a `RunPlan`: the towers' placement, or `--devices` / `--cpu-replicas`."""
    if plan.placement is not None:
        return plan.placement.strategy()
    return select_strategy(plan.config.devices, plan.config.cpu_replicas)


@contextlib.contextmanager
def runtime_context(plan):
    """Yield the `Runtime` of `plan` with TF_CONFIG, seed, precision policy and strategy in place."""
    config = plan.config
    tf_config = workers_tf_config(config.workers, config.worker_index) if config.workers else None
    with _environment("TF_CONFIG", tf_config):
        strategy, description = choose_strategy(plan)
        keras.utils.set_random_seed(config.seed)
        with precision_policy(config.precision):
            yield Runtime(strategy, description, strategy.num_replicas_in_sync, is_chief(strategy))
