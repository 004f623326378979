"""Custom Keras layers where Keras has none."""

from kerascnn.layers.lrn import LocalResponseNormalization

__all__ = ["LocalResponseNormalization"]
