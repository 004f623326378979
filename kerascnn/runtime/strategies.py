"""Choosing the tf.distribute strategy from the machine, `--devices`, `--cpu-replicas`
and the multi-worker settings; synchronised batch norm and learning-rate scaling.
"""

import json
import os

import keras
import tensorflow as tf

from kerascnn.errors import ConfigError


def split_cpu(replicas):
    """Split the host CPU into `replicas` logical devices (/cpu:0 ... /cpu:N-1).

    They share the machine's cores and thread pools, so this does not make
    training faster; it runs the MirroredStrategy code path (per-replica
    batches, all-reduce of gradients, synchronised batch norm) on a machine
    without GPUs, which is how the multi-replica code is tested here.
    TensorFlow allows this only before its runtime starts; once started
    with enough logical CPUs it is a no-op.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < replicas:
            raise ConfigError(
                f"--cpu-replicas {replicas}: TensorFlow already started with {have} CPU device(s); "
                "the split must happen before anything else runs (start a new process)"
            ) from None
    return [f"/cpu:{i}" for i in range(replicas)]


def workers_tf_config(workers, worker_index):
    """TF_CONFIG for `--workers host:port,host:port --worker-index i` (worker 0 is the chief)."""
    hosts = [w.strip() for w in workers.split(",") if w.strip()]
    if len(hosts) < 2 or any(":" not in h for h in hosts):
        raise ConfigError(
            f"--workers takes two or more host:port addresses separated by commas. Received: workers={workers}"
        )
    if worker_index is None or not 0 <= worker_index < len(hosts):
        raise ConfigError(
            f"--worker-index must be 0..{len(hosts) - 1} with {len(hosts)} workers. Received: worker_index={worker_index}"
        )
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": worker_index}})


def synchronize_batch_norm(model):
    """Make every BatchNormalization layer of `model` use global batch statistics.

    Under MirroredStrategy each replica normalises with the mean and
    variance of its own share of the batch, so 2 replicas of 64 train
    differently from 1 replica of 128. With `synchronized=True` Keras
    all-reduces the moments across replicas (sum of x and x^2 over the
    global batch), which gives exactly the single-device statistics. The
    flag is read when the layer is called, so setting it on a built but
    not yet traced model is enough; it is saved with the model.

    Returns the number of layers changed.
    """
    changed = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            changed += 1
    return changed


def scaled_learning_rate(lr, replicas, rule=None):
    """`lr` unchanged (rule None), or times the replica count (rule "linear", Goyal et al. 2017)."""
    if rule in (None, "none"):
        return lr
    if rule == "linear":
        return lr * replicas
    raise ConfigError(f"--scale-lr takes linear or none. Received: scale_lr={rule}")


def _gpu_names():
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def chosen_gpus(devices, gpus=None):
    """The GPU device names `--devices` names: "all", a count "N" or indices "0,2".

    ConfigError when the count or an index exceeds the visible GPUs or the
    text is none of these; `gpus` defaults to the visible ones.
    """
    gpus = _gpu_names() if gpus is None else gpus
    devices = str(devices).strip().lower()
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
    return chosen


def select_strategy(devices="auto", cpu_replicas=None):
    """Return `(strategy, description)`.

    - TF_CONFIG set: MultiWorkerMirroredStrategy (one replica per local GPU
      or the CPU of each worker).
    - `cpu_replicas` N > 1: MirroredStrategy over N logical CPU devices
      (see `split_cpu`); N = 1 is the CPU alone.
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
    if cpu_replicas is not None:
        if devices not in ("auto", "cpu"):
            raise ConfigError("--cpu-replicas runs on the CPU; drop --devices or use --devices cpu")
        if cpu_replicas == 1:
            return tf.distribute.OneDeviceStrategy("/cpu:0"), "OneDeviceStrategy (CPU)"
        cpus = split_cpu(cpu_replicas)
        # Reduce through one device rather than with collective ops: on CPU
        # devices TensorFlow launches every all-reduce through merge_call,
        # and the RING collectives of synchronised batch norm and of the
        # gradients then get mismatched instance keys ("Shape mismatch in
        # the collective instance"). One-device reduction has no such keys.
        strategy = tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return strategy, f"MirroredStrategy over {cpu_replicas} logical CPU devices"
    gpus = _gpu_names()
    if devices == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(gpus), f"MirroredStrategy over {len(gpus)} GPUs"
        where = "GPU" if gpus else "CPU"
        return tf.distribute.get_strategy(), f"default strategy (1 {where})"
    if devices == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0"), "OneDeviceStrategy (CPU)"
    chosen = chosen_gpus(devices, gpus)
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


def _scalar_safe_reduce_per_replica():
    """Patch Keras' per-step log reduction so scalars reduce under the collective strategy.

    `keras.src.backend.tensorflow.trainer.reduce_per_replica` reduces every
    log value with `strategy.reduce("MEAN", v, axis=0)` under
    MultiWorkerMirroredStrategy, invalid for the scalar loss and metrics
    (tensorflow/tensorflow#72388). Scalars are reduced with `axis=None`
    instead (the same mean over replicas); everything else is left to Keras.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "kerascnn_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def reduce(v):
            local = strategy.experimental_local_results(v)[0]
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return original(v, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    reduce_per_replica.kerascnn_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def work_around_distributed_build(model, strategy):
    """Let `model.fit/evaluate` run under a multi-replica strategy on any batch (Keras 3.15).

    Two steps of Keras' TensorFlow trainer fail under tf.distribute:

    1. Before every fit and evaluate, the symbolic build averages the
       first batch over replicas, `strategy.reduce("MEAN", batch)`, one
       AddN of the per-replica tensors. A first batch that does not
       divide evenly (a validation set, or a training set, smaller than
       one global batch: 7 images on 2 replicas are 4 + 3) cannot be added
       up, and the collective strategy cannot reduce eager per-replica
       tensors at all (tensorflow/tensorflow#72388). Only the shapes and
       dtypes are used, so they are read from the first local replica
       instead. The steps themselves take uneven shares (Keras weights
       each replica's loss and metrics by its own batch size). An empty
       share still fails on logical CPU replicas (tf.distribute hands out
       a last batch of r images ceil(r / replicas) at a time, so 1 image on
       2 replicas, or 6 on 4, leaves one replica none): TensorFlow 2.21's
       oneDNN Conv2D returns its input unchanged for an empty batch.
    2. Under MultiWorkerMirroredStrategy the per-step logs are reduced
       with `axis=0`, invalid for scalars; see `_scalar_safe_reduce_per_replica`.

    Gradients are untouched: they are all-reduced inside the optimizer as
    usual. No-op for the default strategy, which builds when the step is
    traced; for even batches the build sees the same shapes as Keras' own.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _scalar_safe_reduce_per_replica()

    def first_replica(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def symbolic_build(iterator=None, data_batch=None):
        if model._distribute_strategy is None:  # as Keras: built when the step is traced
            return
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(first_replica, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build
    return model
