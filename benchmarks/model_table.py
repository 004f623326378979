"""The README's table of every registered model: input size, parameters, MACs.

    python benchmarks/model_table.py

Parameters (all, and trainable: Keras also counts batch-norm moving
statistics, which torchvision does not) are counted at the model's own input size (the paper's, or 32x32
for the CIFAR variants) with 1000 classes for the ImageNet models and 10 for
the CIFAR ones; auxiliary classifiers (training-only) are left out. MACs per
image come from kerascnn.analysis.macs (exact, from the layer shapes) at
32x32x3 with 10 classes and at the model's own size.
"""

import inspect
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerascnn.analysis.macs import forward_macs  # noqa: E402
from kerascnn.models.auxiliary import inference_model  # noqa: E402
from kerascnn.models import create_model, list_models, registered_builder  # noqa: E402


def defaults(name):
    params = inspect.signature(registered_builder(name)).parameters
    return params["input_shape"].default, params["num_classes"].default


def main():
    print("| model | own input | classes | parameters | trainable | MMACs at 32x32 | MMACs at own input |")
    print("|---|---|---|---|---|---|---|")
    for name in list_models():
        shape, classes = defaults(name)
        own = inference_model(create_model(name, num_classes=classes, input_shape=shape))
        small = inference_model(create_model(name, num_classes=10, input_shape=(32, 32, 3)))
        print(
            f"| {name} | {shape[0]}x{shape[1]} | {classes} | {own.count_params():,} | "
            f"{sum(int(np.prod(w.shape)) for w in own.trainable_weights):,} | "
            f"{forward_macs(small) / 1e6:,.1f} | {forward_macs(own) / 1e6:,.1f} |",
            flush=True,
        )
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
