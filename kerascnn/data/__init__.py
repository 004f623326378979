"""tf.data sources (tensorflow-datasets, image folder, CIFAR binary, synthetic) and pipelines.

`kerascnn.data.choose_source.open_source` picks a source; `kerascnn.data.pipeline`
turns it into batched train/validation/test datasets; `kerascnn.data.augment`
holds the batched training augmentations; `fit_pca` gives AlexNet's colour
jitter its principal components.
"""

from kerascnn.data.statistics import fit_pca

__all__ = ["fit_pca"]
