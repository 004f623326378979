"""benchmarks/fused_updates.py: the two candidates differ only in the optimizer's update."""

import argparse
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import fused_updates as bench  # noqa: E402  (benchmarks/fused_updates.py)

from kerascnn.training import optim as optim_module  # noqa: E402
from kerascnn.training.fused_updates import is_fused  # noqa: E402


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_fused_and_keras_candidates_are_timed_against_each_other(optimizer, monkeypatch):
    built = []

    def candidate(model, precision, jit, batch_size, infer_batch, image_size, steps, optim, model_options):
        # What keras_candidate does with the optimizer: build_models -> build_optimizer.
        built.append((model, batch_size, optim.optimizer, is_fused(optim_module.build_optimizer(optim, 10, 2))))
        return (lambda: None), None, 0, 0

    monkeypatch.setattr(bench, "keras_candidate", candidate)
    args = argparse.Namespace(image_size=8, steps=1, repeats=2)
    row = bench.bench(bench.Config.parse(f"alexnet_cifar:{optimizer}:32:seeds"), "float32", args)
    # The fused candidate fuses every kind the module can, whether or not the product does.
    assert built == [("alexnet_cifar", 32, optimizer, True), ("alexnet_cifar", 32, optimizer, False)]
    assert set(row["images_per_s"]) == {"fused", "keras"} and row["keras_over_fused"] > 0
    assert all(len(s) == 2 for s in row["seconds"].values())
    assert is_fused(optim_module.build_optimizer(bench.Config.parse("alexnet_cifar:adam:32").keras_settings()[1], 1, 1))
