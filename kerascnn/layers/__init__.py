"""Custom Keras layers where Keras has none (or none fast enough: BatchNormalization)."""

from kerascnn.layers.fused_batch_norm import BatchNormalization
from kerascnn.layers.lrn import LocalResponseNormalization
from kerascnn.layers.pca_jitter import PCAColorJitter

__all__ = ["BatchNormalization", "LocalResponseNormalization", "PCAColorJitter"]
