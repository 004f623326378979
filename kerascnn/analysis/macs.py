"""Exact multiply-accumulate counts of a forward pass, from layer shapes.

For one image:
- Conv2D: H_out * W_out * C_out * (k_h * k_w * C_in / groups), the kernel
  shape already holding C_in / groups, so grouped convolutions (AlexNet's
  two towers) count half the connections of ungrouped ones; depthwise
  convolutions H_out * W_out * k_h * k_w * C_in * multiplier.
- Dense: C_in * C_out (per position, for inputs with extra axes).
Pooling, normalisation, activations and additions are not multiply-accumulates
of weights and are left out, as in the papers' and torchvision's tables.
Nested models (sub-models used as layers) are counted through.

The per-layer figures (and the formulas for the other layer kinds) are in
`kerascnn.analysis.profile`; this is their total.
"""

from kerascnn.analysis.profile import profile_model


def forward_macs(model):
    """Multiply-accumulates of one forward pass for one image."""
    return int(profile_model(model).macs)
