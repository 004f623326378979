"""Model states that tests and benchmarks need and training would take minutes to reach.

A freshly built batch norm has moving mean 0, moving variance 1, scale 1
and offset 0: the identity (up to epsilon), so code that rewrites or
fuses batch norms (`kerascnn.serving.fold_batch_norm`, the serving
benchmarks) would be checked against a layer that does nothing. The helper
here gives every batch norm the kind of values a trained one has.
"""

import keras
import numpy as np


def randomize_batch_norms(model, seed=0):
    """Give every BatchNormalization of `model` trained-looking statistics and affine weights; returns `model`.

    Per channel: moving mean ~ N(0, 0.5), moving variance ~ U(0.05, 3.0)
    (variances well below and above 1, so that 1 / sqrt(var + eps) matters),
    gamma ~ U(0.5, 1.5) and beta ~ N(0, 0.3) where the layer has them.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.3, channels))
            layer.moving_mean.assign(rng.normal(0, 0.5, channels))
            layer.moving_variance.assign(rng.uniform(0.05, 3.0, channels))
    return model
