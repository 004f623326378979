"""AlexNet's two-GPU model parallelism: the two towers on two devices.

Krizhevsky, Sutskever & Hinton 2012, section 3.2 and Figure 2: "we spread
the net across two GPUs ... [we] put half of the kernels (or neurons) on
each GPU, with one additional trick: the GPUs communicate only in certain
layers. This means that, for example, the kernels of layer 3 take input
from all kernel maps in layer 2. However, kernels in layer 4 take input
only from those kernel maps in layer 3 which reside on the same GPU."

So on device t (t = 0, 1), with `[a | b]` a channel concatenation:

    conv1_t (48 of the 96 kernels, on the whole image) -> LRN over its 48 maps -> pool1
    conv2_t (128 kernels on its own 48 maps)            -> LRN over its 128 maps -> pool2
    conv3_t (192 kernels on [pool2_0 | pool2_1])        <- cross-tower
    conv4_t (192 kernels on its own conv3_t), conv5_t (128 on its own conv4_t) -> pool5
    fc6_t (2048 units on flatten[pool5_0 | pool5_1])    <- cross-tower
    fc7_t (2048 units on [fc6_0 | fc6_1])               <- cross-tower
    predictions (on device 0, on [fc7_0 | fc7_1])

This is the single-device `alexnet` (towers=2) with each layer's output
channels cut in two halves, half t on device t: its grouped conv2, conv4 and
conv5 (`groups=2`) and its per-tower LRN (`groups=2`) compute exactly the
same function. `parallelize` builds the two-device model from the
single-device one (same settings, weight decay, initial weights);
`to_model_parallel` / `to_single_device` convert weights either way: every
weight of layer L is `concat([L_tower0, L_tower1], axis=-1)` (kernels
(kh, kw, in, out), biases, batch-norm vectors and Dense kernels all keep
their output channels last), except `predictions`, which is one layer.

Placement happens inside `OnDevice.call`: a Keras Functional model re-runs
its layers' `call` whenever it is traced (`fit`'s train step included), so
a `tf.device` scope around model construction would be lost. One replica:
the batch is not split, the model is (no MirroredStrategy on top).

`fit` saves the single-device equivalent as best.keras, so `evaluate`,
`export` and `predict` see an ordinary `alexnet` whatever trained it.
"""

import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kerascnn.runtime.strategies import chosen_gpus, split_cpu
from kerascnn.errors import ConfigError
from kerascnn.layers import LocalResponseNormalization

MODEL = "alexnet"
TOWERS = 2
# The stages of the single-device model: (first layer, input, block name).
# "image": each tower sees the whole image; "cross": each tower takes both
# towers' outputs (the paper's cross-GPU connections).
STAGES = (
    ("conv1", "image", "conv1_2"),  # conv1, norm1, pool1, conv2, norm2, pool2
    ("conv3", "cross", "conv3_5"),  # conv3, conv4, conv5, pool5
    ("flatten", "cross", "fc6"),  # fc6 with its flatten, ReLU, dropout
    ("fc7", "cross", "fc7"),
    ("predictions", "cross", "classifier"),  # one layer, on device 0
)


@keras.saving.register_keras_serializable(package="kerascnn")
class OnDevice(keras.layers.Layer):
    """Runs a chain of layers on one device; a list input is concatenated there first.

    Its variables are created on `device` and its ops are placed on it
    every time the model is traced, so a compiled train step keeps the
    placement. Concatenating inside the scope puts the cross-device copy
    on the receiving side, as the paper's GPUs read each other's maps.

    Args:
        layers: the layers, applied in order.
        device: a TensorFlow device name, such as "/GPU:1" or "/cpu:1".
    """

    def __init__(self, layers, device, **kwargs):
        super().__init__(**kwargs)
        if not layers:
            raise ValueError(f"OnDevice needs at least one layer. Received: layers={layers}")
        self.chain = list(layers)
        self.device = device

    def build(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            input_shape = (*input_shape[0][:-1], sum(s[-1] for s in input_shape))
        with tf.device(self.device):
            shape = tuple(input_shape)
            for layer in self.chain:
                if not layer.built:  # from_config already built them (on this device)
                    layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        with tf.device(self.device):
            x = ops.concatenate(list(inputs), axis=-1) if isinstance(inputs, (list, tuple)) else inputs
            for layer in self.chain:
                x = layer(x, training=training)
            return x

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            input_shape = (*input_shape[0][:-1], sum(s[-1] for s in input_shape))
        shape = tuple(input_shape)
        for layer in self.chain:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        return {
            **super().get_config(),
            "layers": [keras.saving.serialize_keras_object(layer) for layer in self.chain],
            "device": self.device,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Deserialising builds the layers: create their variables on the device.
        with tf.device(config["device"]):
            config["layers"] = [keras.saving.deserialize_keras_object(c) for c in config["layers"]]
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerascnn")
class ModelParallelModel(keras.Model):
    """A Functional model whose backward pass and weight updates run where its forward pass ran.

    `OnDevice` places the forward ops, but `tf.GradientTape` builds the
    gradient ops without a device, and TensorFlow's placer puts such ops on
    the first device: tower 1's backward pass would run on device 0. The
    train step is Keras' own (`keras.src.backend.tensorflow.trainer`) with
    two changes, so each of the paper's GPUs computes its own layers'
    gradients and updates its own weights:
    - the gradients come from `tf.gradients`, which in TF2 colocates each
      gradient op with its forward op (colocate_gradients_with_ops);
    - the optimizer's per-weight update (momentum, step) is built on the
      weight's device (`_updates_on_weight_devices`).
    """

    def train_step(self, data):
        if tf.executing_eagerly():  # run_eagerly: ops run where the tape is; nothing to place
            return super().train_step(data)
        from keras.src import tree
        from keras.src.losses import loss as loss_module
        from keras.src.trainers import data_adapters

        x, y, sample_weight = data_adapters.data_adapter_utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self._loss_tracker.update_state(
            loss_module.unscale_loss_for_distribution(loss),
            sample_weight=tf.shape(next(i for i in tree.flatten(x) if i is not None))[0],
        )
        loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tf.gradients(loss, [w.value for w in weights])
        with _updates_on_weight_devices(self.optimizer):
            self.optimizer.apply_gradients(zip(gradients, weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


@contextlib.contextmanager
def _updates_on_weight_devices(optimizer):
    """While the train step is traced, build each weight's update ops on that weight's device.

    Keras' TensorFlow optimizer calls `update_step(gradient, variable, lr)`
    once per weight with no device scope (the default strategy does not
    colocate), so the arithmetic of tower 1's updates would be placed on
    device 0 and only the final assignment on device 1. The wrapper is an
    instance attribute, undone when the trace is done.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer (mixed_float16)
    original = inner.update_step
    # The product's own wrappers (fused updates, the weight decay, the offsets' rate) are instance
    # attributes too: put back what was there, so that a later trace still decays and fuses.
    wrapped = "update_step" in inner.__dict__

    def update_step(gradient, variable, learning_rate):
        with tf.device(variable.device):
            return original(gradient, variable, learning_rate)

    inner.update_step = update_step
    try:
        yield
    finally:
        if wrapped:
            inner.update_step = original
        else:
            del inner.update_step


def tower_name(name, tower):
    return f"{name}_tower{tower}"


def _tower_layer(layer, tower, first_of_stage):
    """Tower `tower`'s half of a single-device layer, from its config (weight decay included)."""
    config = {**layer.get_config(), "name": tower_name(layer.name, tower)}
    if isinstance(layer, keras.layers.Conv2D):
        # Inside a stage a convolution sees only its own tower's maps, which
        # is what the single-device model's groups=2 expresses; the first
        # convolution of a stage sees all its input, so it must be ungrouped.
        if layer.groups != (1 if first_of_stage else TOWERS):
            raise ValueError(f"{layer.name} has groups={layer.groups}; not the paper's two-tower layout")
        config.update(filters=layer.filters // TOWERS, groups=1)
    elif isinstance(layer, keras.layers.Dense):
        config.update(units=layer.units // TOWERS)
    elif isinstance(layer, LocalResponseNormalization):
        if layer.groups != TOWERS:
            raise ValueError(f"{layer.name} has groups={layer.groups}; the towers need per-tower LRN")
        config.update(groups=1)
    return layer.__class__.from_config(config)


def _stages(single):
    """The single-device layers of each stage, in order (the input layer left out)."""
    layers = [layer for layer in single.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = [layer.name for layer in layers]
    # The first stage starts with the first layer (a padding layer, if any).
    starts = [0] + [names.index(start) for start, _, _ in STAGES[1:]] + [len(layers)]
    return [layers[a:b] for a, b in zip(starts, starts[1:])]


def build_model_parallel(single, devices):
    """The two-device model equivalent to the single-device `alexnet` `single` (weights copied)."""
    if len(devices) != TOWERS:
        raise ValueError(f"model parallelism needs {TOWERS} devices. Received: devices={devices}")
    if single.get_layer("conv2").groups != TOWERS:
        raise ConfigError("--model-parallel needs the two-tower alexnet; drop towers=1")
    inputs = keras.Input(shape=single.input_shape[1:], name="images", dtype=single.input.dtype)
    *tower_stages, (predictions,) = _stages(single)
    outputs = [inputs] * TOWERS
    for (start, source, block), stage in zip(STAGES, tower_stages):
        outputs = [
            OnDevice(
                [_tower_layer(layer, t, isinstance(layer, keras.layers.Conv2D) and layer.name == start)
                 for layer in stage],
                devices[t],
                name=f"tower{t}_{block}",
            )(outputs[t] if source == "image" else outputs)
            for t in range(TOWERS)
        ]
    head = predictions.__class__.from_config(predictions.get_config())
    logits = OnDevice([head], devices[0], name="classifier")(outputs)
    model = ModelParallelModel(inputs, logits, name=f"{single.name}_model_parallel")
    to_model_parallel(single, model)
    return model


def _tower_layers(parallel):
    return {
        layer.name: layer
        for block in parallel.layers
        if isinstance(block, OnDevice)
        for layer in block.chain
    }


def _pairs(single, parallel):
    """(single-device layer, [its tower layers]) for every layer with weights."""
    towers = _tower_layers(parallel)
    for layer in single.layers:
        if not layer.weights:
            continue
        if layer.name in towers:  # predictions: the same layer on device 0
            yield layer, [towers[layer.name]]
        else:
            yield layer, [towers[tower_name(layer.name, t)] for t in range(TOWERS)]


def to_model_parallel(single, parallel):
    """Copy the single-device weights into the towers: output channels [0, C/2) to tower 0, the rest to tower 1."""
    for layer, parts in _pairs(single, parallel):
        halves = [np.split(w, len(parts), axis=-1) for w in layer.get_weights()]
        for t, part in enumerate(parts):
            part.set_weights([h[t] for h in halves])


def to_single_device(parallel, single):
    """Copy the towers' weights into the single-device model (the inverse of `to_model_parallel`)."""
    for layer, parts in _pairs(single, parallel):
        layer.set_weights([np.concatenate(ws, axis=-1) for ws in zip(*(p.get_weights() for p in parts))])


def placement(parallel):
    """{block name: {"device": ..., "layers": [...]}} of a model-parallel model (for config.json)."""
    return {
        block.name: {"device": block.device, "layers": [layer.name for layer in block.chain]}
        for block in parallel.layers
        if isinstance(block, OnDevice)
    }


class SingleDeviceCheckpoint:
    """What `fit` saves for a model-parallel run: the single-device `alexnet` with the trained weights.

    Duck-types the `save(path)` that `callbacks.BestCheckpoint` calls.
    """

    def __init__(self, parallel, single):
        self.parallel = parallel
        self.single = single

    def save(self, path):
        to_single_device(self.parallel, self.single)
        self.single.save(path)


@dataclasses.dataclass
class ModelParallel:
    """The two devices of a `--model-parallel` run, and the models it built.

    Attributes:
        devices: the two device names, tower 0's first.
        description: for the log and config.json ("strategy").
    """

    devices: tuple
    description: str
    split_cpu: bool = False
    single: keras.Model = None
    parallel: keras.Model = None

    def strategy(self):
        """One replica: the default strategy; the model places its own ops.

        On the CPU this is where the CPU is split into the towers' two
        logical devices: the first change to TensorFlow's runtime, made by
        the run's runtime context, never by planning.
        """
        if self.split_cpu:
            split_cpu(TOWERS)
        return tf.distribute.get_strategy(), self.description

    def parallelize(self, network):
        """The two-device model of `network`; remembered, with `network`, for checkpoints."""
        self.single = network
        self.parallel = build_model_parallel(network, self.devices)
        return self.parallel

    def checkpoint_model(self):
        return SingleDeviceCheckpoint(self.parallel, self.single)

    def record(self):
        return {
            "devices": list(self.devices),
            "blocks": placement(self.parallel),
            "checkpoint": "single-device alexnet (kerascnn.runtime.model_parallel.to_single_device)",
        }


def _two_gpus(devices):
    """The two GPUs of the towers: the first two for auto/all, else exactly the two `--devices` names."""
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = str(devices).strip().lower()
    if devices == "cpu":
        chosen = []
    elif devices in ("auto", "all"):
        chosen = gpus[:TOWERS]
    else:
        chosen = chosen_gpus(devices, gpus)
    if len(chosen) != TOWERS:
        raise ConfigError(
            f"--model-parallel needs two devices: two GPUs ({len(gpus)} visible, --devices {devices}) "
            "or two CPU devices with --cpu-replicas 2"
        )
    return chosen


def plan(config):
    """`(config, ModelParallel or None)` for a RunConfig; ConfigError when it cannot run.

    Changes no TensorFlow state: with `--cpu-replicas 2` the CPU is split
    later, by `ModelParallel.strategy()`. `--jit auto` becomes off: XLA compiles a step for one
    device, which would undo the placement.
    """
    if not getattr(config, "model_parallel", False):
        return config, None
    if config.model != MODEL:
        raise ConfigError(
            f"--model-parallel splits the two towers of alexnet (Krizhevsky et al. 2012); "
            f"{config.model} has none. Received: model={config.model}"
        )
    if config.model_options.get("towers", TOWERS) != TOWERS:
        raise ConfigError(
            f"--model-parallel needs alexnet's two towers. Received: towers={config.model_options['towers']}"
        )
    if config.weights is not None or config.init_from is not None:
        raise ConfigError("--model-parallel does not combine with --weights or --init-from yet; train without them")
    if config.jit is True:
        raise ConfigError("--jit compiles the step for one device; drop it with --model-parallel")
    if config.workers:
        raise ConfigError("--model-parallel runs in one process; drop --workers")
    if config.cpu_replicas is not None:
        if config.cpu_replicas != TOWERS:
            raise ConfigError(
                f"--model-parallel on the CPU needs --cpu-replicas 2 (one device per tower). "
                f"Received: cpu_replicas={config.cpu_replicas}"
            )
        if str(config.devices).lower() not in ("auto", "cpu"):
            raise ConfigError("--cpu-replicas runs on the CPU; drop --devices or use --devices cpu")
        devices = tuple(f"/cpu:{i}" for i in range(TOWERS))  # made by ModelParallel.strategy()
        where = "2 logical CPU devices"
    else:
        devices = tuple(_two_gpus(config.devices))
        where = "2 GPUs"
    description = f"model parallel: alexnet towers on {where} ({devices[0]}, {devices[1]}), 1 replica"
    return config.replace(jit=False), ModelParallel(devices, description, split_cpu=config.cpu_replicas is not None)
