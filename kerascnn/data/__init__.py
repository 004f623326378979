"""tf.data sources (tensorflow-datasets, image folder, CIFAR binary, synthetic) and pipelines.

`kerascnn.data.choose_source.open_source` picks a source; `kerascnn.data.pipeline`
turns it into batched train/validation/test datasets; `kerascnn.data.augment`
holds the batched training augmentations; `fit_pca` gives AlexNet's colour
jitter its principal components.
"""

from kerascnn._lazy import lazy_exports

_PUBLIC = {
    "open_source": "kerascnn.data.choose_source",
    "make_datasets": "kerascnn.data.pipeline",
    "fit_pca": "kerascnn.data.statistics",
    "DataSource": "kerascnn.data.contract",
    "SourceInfo": "kerascnn.data.contract",
    "Preprocessing": "kerascnn.data.preprocessing",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
