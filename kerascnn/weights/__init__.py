"""Weights from elsewhere: ImageNet weights, imported PyTorch weights, other runs."""

from kerascnn.weights.archive import read_metadata, save_weights_file

__all__ = ["read_metadata", "save_weights_file"]
