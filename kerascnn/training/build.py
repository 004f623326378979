"""Phase 4: build and compile the models of a run inside the strategy's scope.

`build_models` is the one model-building path of the project: `fit`, the
tuner's hypermodel and the benchmarks all call it, so a model trains the
same wherever it is built (the optimizer's coupled weight decay, the
auxiliary-classifier losses of GoogLeNet, the loss and the metrics).
"""

import dataclasses

import keras

from kerascnn.models import create_model
from kerascnn.models.auxiliary import inference_model, training_model
from kerascnn.runtime import hardware
from kerascnn.training import extension
from kerascnn.training.norm_parameters import freeze_norm_scales
from kerascnn.training.optim import build_optimizer, coupled_weight_decay
from kerascnn.training.weight_decay import decay_factors, decay_in_update


def compile_model(model, optimizer, label_smoothing=0.0, jit=False, num_classes=None):
    """Compile with the project's loss and metrics (logits in, one-hot labels).

    `cross_entropy` is the plain cross-entropy (no label smoothing), the
    figure to compare across runs; `loss` is the data term optimised (label
    smoothing and GoogLeNet's auxiliary losses included; the weight decay acts
    in the optimizer's update, `kerascnn.training.weight_decay`, not here).
    """
    metrics = [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.CategoricalCrossentropy(from_logits=True, name="cross_entropy"),
    ]
    if (num_classes or model.output_shape[-1]) > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
        metrics=metrics,
        jit_compile=hardware.concrete_jit(jit),
    )
    return model


def build_models(
    name, num_classes, input_shape, model_options, optim, steps_per_epoch, epochs, jit=False, placement=None,
    schedule=None, whitening=None,
):
    """(network, training model, inference model) of a registered model, ready to fit.

    The optimizer applies the coupled weight decay in its update step
    (`kerascnn.training.weight_decay`, found on the network as trained: the
    two-device one under --model-parallel); the training model
    adds auxiliary-classifier losses (GoogLeNet) and is compiled with the
    project's loss and metrics; the inference model shares the weights
    without the auxiliary heads (checkpoints, exports, parameter counts).
    `schedule`, when given, is the learning rate instead of `optim`'s over
    `epochs` (an extended run's segments, `kerascnn.training.extension`).
    `whitening`, a `kerascnn.training.whitening.Whitening` (--whiten), sets
    and freezes the first convolution. Call inside the strategy's scope.
    """
    network = create_model(name, num_classes=num_classes, input_shape=input_shape, **model_options)
    if optim.freeze_bn_scale:  # before the optimizer: frozen scales get no slots (--freeze-bn-scale)
        freeze_norm_scales(network)
    if whitening is not None:
        # Before the optimizer sees the trainable variables: the frozen layer then has no slots, and
        # no update, so no decay either.
        whitening.apply(network)
    if placement is not None:  # --model-parallel: the same network, its towers on two devices
        network = placement.parallelize(network)
    model = training_model(network)
    optimizer = build_optimizer(optim, steps_per_epoch, epochs)
    # The config refuses --decay-norm-and-bias with adamw (which decays on its own) and without decay.
    factors = decay_factors(network, coupled_weight_decay(optim), optim.decay_norm_and_bias, optim.bn_bias_lr_scale)
    optimizer = decay_in_update(optimizer, factors)
    if whitening is not None:
        optimizer = whitening.gate_bias(optimizer, network, steps_per_epoch)
    if schedule is not None:
        optimizer.learning_rate = schedule  # Keras' public setter; no variable changes for a schedule
    compile_model(model, optimizer, optim.label_smoothing, jit, num_classes)
    # Its slots now, as BackupAndRestore does before a resume: built in the first trace of the train
    # step instead (the default strategy defers it there), they make TensorFlow trace the step twice,
    # one variable-creating trace and one real one: seconds of every run (7 s of GoogLeNet-CIFAR's 17).
    model.optimizer.build(model.trainable_variables)
    return network, model, inference_model(network)


@dataclasses.dataclass
class Built:
    """The models of a run.

    Attributes:
        network: the registered model (two-device under --model-parallel).
        model: the compiled training model (adds auxiliary losses).
        inference: the model checkpoints and exports hold (no auxiliary heads).
        checkpoint_model: what `best.keras` saves (the single-device
            equivalent under --model-parallel).
        optim: the `OptimConfig` trained with (learning rate after --scale-lr).
        transfer: config.json's record of the weights loaded, or None.
        sync_bn_layers: batch-norm layers synchronised across replicas.
    """

    network: keras.Model
    model: keras.Model
    inference: keras.Model
    checkpoint_model: object
    optim: object
    transfer: dict = None
    sync_bn_layers: int = 0


def compile_in_scope(plan, runtime, num_classes, input_shape, steps_per_epoch, whitening=None):
    """`build_models` for `plan` inside the runtime's strategy scope; (network, model, inference)."""
    # The TensorFlow-only phases are imported where they run, so `build_models` itself
    # imports without TensorFlow and builds on any Keras backend (benchmarks/gpu_recipes.py).
    from kerascnn.runtime.strategies import work_around_distributed_build

    config = plan.config
    optim = plan.optim_for(runtime.replicas)
    schedule = None
    if config.extensions and optim.schedule in extension.SEGMENTED:
        schedule = extension.run_learning_rate(optim, steps_per_epoch, config)
    with runtime.scope():
        built = build_models(
            config.model, num_classes, input_shape, config.model_options, optim,
            steps_per_epoch, config.epochs, config.jit, placement=plan.placement, schedule=schedule,
            whitening=whitening,
        )
    work_around_distributed_build(built[1], runtime.strategy)
    return built


def build(plan, runtime, data, log=print):
    """The run's `Built` models, with --weights / --init-from loaded, --whiten and --sync-bn applied."""
    from kerascnn.runtime.strategies import synchronize_batch_norm
    from kerascnn.training.whitening import whitening_for

    whitening = whitening_for(plan, data)
    network, model, inference = compile_in_scope(
        plan, runtime, data.info.num_classes, data.input_shape, data.datasets.steps_per_epoch, whitening
    )
    if whitening is not None:
        log(whitening.text)
    optim = plan.optim_for(runtime.replicas)
    if optim.lr != plan.config.optim.lr:
        log(f"--scale-lr linear: learning rate {plan.config.optim.lr:g} x {runtime.replicas} replicas = {optim.lr:g}")
    transfer = plan.transfer.apply(network, plan.config, optim.lr, data.first_epoch, log)
    # Read when the layers are first called in training, so setting it now is enough.
    sync_bn_layers = synchronize_batch_norm(network) if plan.config.sync_bn else 0
    # A model-parallel run saves its single-device equivalent (kerascnn.runtime.model_parallel).
    checkpoint = plan.placement.checkpoint_model() if plan.placement else inference
    return Built(network, model, inference, checkpoint, optim, transfer, sync_bn_layers)
