"""Custom Keras layers where Keras has none (or none fast enough: BatchNormalization, Conv2D)."""

from kerascnn.layers.conv2d import Conv2D
from kerascnn.layers.fused_batch_norm import BatchNormalization
from kerascnn.layers.gelu import GELU
from kerascnn.layers.lrn import LocalResponseNormalization
from kerascnn.layers.pca_jitter import PCAColorJitter

__all__ = ["BatchNormalization", "Conv2D", "GELU", "LocalResponseNormalization", "PCAColorJitter"]
