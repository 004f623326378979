"""Custom Keras layers where Keras has none."""

from kerascnn.layers.lrn import LocalResponseNormalization
from kerascnn.layers.pca_jitter import PCAColorJitter

__all__ = ["LocalResponseNormalization", "PCAColorJitter"]
