"""Batch-norm statistics recomputed for the weights a model holds now (SWA's `update_bn`).

A batch-norm layer tests with the moving averages of its input's mean and
variance, gathered while training ran the *raw* weights forward. Averaged
weights (`--ema`) never ran forward: their layers see inputs with other
statistics, and testing them with the raw weights' moving averages cost
resnet20 8.5 points (78.25% against 86.75%, docs/results.md#ema-resnet20).
Izmailov et al. 2018 ("Averaging Weights Leads to Wider Optima and Better
Generalization", section 3.2) recompute them with one forward pass in
training mode over training data. Per channel c of every layer, over K
batches:

    mu_c      = (1/K) sum_k mean(x_k)_c
    sigma^2_c = (1/K) sum_k var(x_k)_c         (the biased batch variance)

the running mean of each batch's own statistics: PyTorch's
`torch.optim.swa_utils.update_bn`, whose `momentum=None` makes the running
statistics a cumulative average. Here each layer's momentum is set to 0 for
the pass, so a training-mode call leaves its batch's statistics in the moving
variables, and the mean over the batches is taken on the host. In training
mode each layer normalises with its batch's statistics, so every layer is
measured on the input it gets during training, as in update_bn.

A frozen layer (`trainable=False`) normalises with its moving statistics in
training mode too (Keras' rule, `kerascnn.layers.BatchNormalization`), and
keeps them. Dropout is active during the pass (update_bn's `model.train()`
too); the recipes that average weights do without it.
"""

import keras
import numpy as np


def batch_norm_layers(model):
    """The trainable batch-norm layers of `model`, nested models included, each once."""
    found, seen = [], set()

    def walk(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.trainable and not layer.renorm:
                found.append(layer)
            return
        for inner in getattr(layer, "layers", ()):
            walk(inner)

    for layer in model.layers:
        walk(layer)
    return found


def moving_statistics(layers):
    """[(moving_mean, moving_variance)] of `layers` as numpy arrays."""
    return [(keras.ops.convert_to_numpy(l.moving_mean), keras.ops.convert_to_numpy(l.moving_variance)) for l in layers]


def set_moving_statistics(layers, statistics):
    for layer, (mean, variance) in zip(layers, statistics):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)


class StatisticsPass:
    """Recomputes the batch-norm statistics of `model` from `steps` batches of `batches`.

    Args:
        model: the Keras model whose layers' moving statistics are replaced.
        batches: a dataset (or any iterable) of `(inputs, targets, ...)` or
            inputs; a new iterator is taken on every call, so each pass reads
            the same first `steps` batches.
        steps: how many batches to average over.

    The layers are found again at every call: a layer frozen or unfrozen
    since (--freeze-backbone's unfreezing) joins or leaves the pass.
    """

    def __init__(self, model, batches, steps):
        self.model = model
        self.batches = batches
        self.steps = int(steps)
        self._forward, self._traced_for = None, None

    @property
    def layers(self):
        return batch_norm_layers(self.model)

    def _forward_fn(self, layers):
        # Traced while every layer of `layers` has momentum 0: the graph keeps that constant,
        # whatever the attribute holds later, and the training step keeps its own trace. A
        # layer's `trainable` is also fixed in the trace, so another set of layers retraces.
        key = tuple(id(layer) for layer in layers)
        if self._forward is None or self._traced_for != key:
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                self._forward = tf.function(lambda x: self.model(x, training=True), reduce_retracing=True)
            else:
                self._forward = lambda x: self.model(x, training=True)
            self._traced_for = key
        return self._forward

    def __call__(self):
        """Set every trainable batch-norm layer's moving statistics to their mean over the batches; return K."""
        layers = self.layers
        if not layers or self.steps < 1:
            return 0
        momenta = [layer.momentum for layer in layers]
        sums, count = None, 0
        try:
            for layer in layers:
                layer.momentum = 0.0
            forward = self._forward_fn(layers)
            for element in self.batches:
                inputs = element[0] if isinstance(element, (tuple, list)) else element
                forward(inputs)
                batch = moving_statistics(layers)
                if sums is None:
                    sums = [(mean.astype(np.float64), variance.astype(np.float64)) for mean, variance in batch]
                else:
                    sums = [(s_mean + mean, s_var + variance) for (s_mean, s_var), (mean, variance) in zip(sums, batch)]
                count += 1
                if count == self.steps:
                    break
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
        if count:
            set_moving_statistics(layers, [(s_mean / count, s_var / count) for s_mean, s_var in sums])
        return count
