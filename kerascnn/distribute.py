"""Choosing the tf.distribute strategy from the machine and `--devices`."""

import json
import os

import tensorflow as tf

from kerascnn.errors import ConfigError


def _gpu_names():
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def select_strategy(devices="auto"):
    """Return `(strategy, description)`.

    - TF_CONFIG set: MultiWorkerMirroredStrategy (one replica per local GPU
      or the CPU of each worker).
    - "auto": MirroredStrategy over every GPU when there are several, the
      default (single-device) strategy otherwise.
    - "cpu": the CPU only, even when GPUs are visible.
    - "all", a count "N", or GPU indices "0,2": MirroredStrategy over those GPUs.
    """
    devices = str(devices).strip().lower()
    if os.environ.get("TF_CONFIG") and devices == "auto":
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError:
            raise ConfigError("TF_CONFIG is not valid JSON; fix it or unset it") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return strategy, f"MultiWorkerMirroredStrategy ({strategy.num_replicas_in_sync} replicas)"
    gpus = _gpu_names()
    if devices == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(gpus), f"MirroredStrategy over {len(gpus)} GPUs"
        where = "GPU" if gpus else "CPU"
        return tf.distribute.get_strategy(), f"default strategy (1 {where})"
    if devices == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0"), "OneDeviceStrategy (CPU)"
    if devices == "all":
        chosen = gpus
    elif devices.isdigit():
        count = int(devices)
        if count < 1 or count > len(gpus):
            raise ConfigError(
                f"--devices {devices} asks for {count} GPUs but {len(gpus)} are visible; "
                "use --devices cpu, all, a count or GPU indices such as 0,1"
            )
        chosen = gpus[:count]
    else:
        try:
            indices = [int(i) for i in devices.split(",")]
        except ValueError:
            raise ConfigError(
                f"--devices must be auto, cpu, all, a GPU count or GPU indices such as 0,1. Received: {devices}"
            ) from None
        bad = [i for i in indices if not 0 <= i < len(gpus)]
        if bad:
            raise ConfigError(f"--devices names GPU {bad[0]} but {len(gpus)} GPUs are visible")
        chosen = [gpus[i] for i in indices]
    if not chosen:
        raise ConfigError(f"--devices {devices} needs a GPU and none is visible; use --devices cpu")
    if len(chosen) == 1:
        return tf.distribute.OneDeviceStrategy(chosen[0]), f"OneDeviceStrategy ({chosen[0]})"
    return tf.distribute.MirroredStrategy(chosen), f"MirroredStrategy over {len(chosen)} GPUs"


def is_chief(strategy):
    """Whether this process writes the run directory (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )
