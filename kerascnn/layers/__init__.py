"""Custom Keras layers where Keras has none (or none fast enough: BatchNormalization, Conv2D, GELU), and DiracStart.

Importing this package registers them all, so a `.keras` file holding any of them loads.
"""

from kerascnn.layers.conv2d import Conv2D
from kerascnn.layers.dirac import DiracStart
from kerascnn.layers.fused_batch_norm import BatchNormalization
from kerascnn.layers.gelu import GELU
from kerascnn.layers.lrn import LocalResponseNormalization
from kerascnn.layers.pca_jitter import PCAColorJitter

__all__ = ["BatchNormalization", "Conv2D", "DiracStart", "GELU", "LocalResponseNormalization", "PCAColorJitter"]
