"""Training networks that have auxiliary classifiers (GoogLeNet).

Szegedy et al. 2015, section 5: "During training, their loss gets added to
the total loss of the network with a discount weight (the losses of the
auxiliary classifiers were weighted by 0.3). At inference time, these
auxiliary networks are discarded."

A network with auxiliary heads has the outputs `[main logits, aux logits, ...]`.
`training_model` wraps it so that the training loss is
`L(main) + 0.3 * sum(L(aux))` while metrics, validation and evaluation see
the main head only; `inference_model` is the same network (shared weights)
with only the main output, which is what checkpoints, exports and `predict`
keep. Networks with one output pass through both unchanged.
"""

import keras

AUX_LOSS_WEIGHT = 0.3


def has_auxiliary_outputs(network):
    return len(network.outputs) > 1


def inference_model(network):
    """`network` without its auxiliary heads (shares the weights)."""
    if not has_auxiliary_outputs(network):
        return network
    return keras.Model(network.input, network.outputs[0], name=network.name)


def training_model(network, aux_weight=AUX_LOSS_WEIGHT):
    """The model to compile and fit: `network` itself, or the auxiliary-loss wrapper."""
    if not has_auxiliary_outputs(network):
        return network
    return AuxiliaryLossModel(network, aux_weight, name=f"{network.name}_training")


class AuxiliaryLossModel(keras.Model):
    """Adds the weighted losses of a network's auxiliary outputs to its main loss.

    Only used for training (it is never saved as a model: checkpoints store
    `inference_model(network)`; BackupAndRestore stores weights only).

    Args:
        network: a Functional model with outputs [main, aux_1, ..., aux_k].
        aux_weight: weight of each auxiliary loss (0.3 in the paper).
    """

    def __init__(self, network, aux_weight=AUX_LOSS_WEIGHT, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.aux_weight = aux_weight
        # All weights are the (built) network's; BackupAndRestore needs the
        # wrapper marked as built before fit() starts.
        self.build(network.input_shape)

    def call(self, inputs, training=False):
        outputs = self.network(inputs, training=training)
        # Evaluation and prediction see only the main classifier.
        return list(outputs) if training else outputs[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, (list, tuple)):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        main, *auxiliary = y_pred
        # The same compiled loss (and so the same distribution scaling) for every head.
        loss = super().compute_loss(x, y, main, sample_weight, training)
        for aux in auxiliary:
            loss = loss + self.aux_weight * self._compile_loss(y, aux, sample_weight)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (list, tuple)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)
