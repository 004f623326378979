"""tf.data sources (tensorflow-datasets, image folder, CIFAR binary, synthetic) and pipelines.

`kerascnn.data.sources.open_source` picks a source; `kerascnn.data.pipeline`
turns it into batched train/validation/test datasets.
"""
