"""Exact multiply-accumulate counts of a forward pass, from layer shapes.

For one image:
- Conv2D: H_out * W_out * C_out * (k_h * k_w * C_in / groups), the kernel
  shape already holding C_in / groups, so grouped convolutions (AlexNet's
  two towers) count half the connections of ungrouped ones.
- Dense: C_in * C_out (per position, for inputs with extra axes).
Pooling, normalisation, activations and additions are not multiply-accumulates
of weights and are left out, as in the papers' and torchvision's tables.
Nested models (sub-models used as layers) are counted through.
"""

import numpy as np
import keras


def forward_macs(model):
    """Multiply-accumulates of one forward pass for one image."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_macs(layer)
        elif isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, _ = layer.output.shape
            total += h * w * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            positions = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
            total += positions * int(np.prod(layer.kernel.shape))
    return int(total)
