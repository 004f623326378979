"""benchmarks/decay_in_update.py: the three candidates differ only in where the weight decay acts."""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import decay_in_update as bench  # noqa: E402  (benchmarks/decay_in_update.py)

from kerascnn.training.build import build_models  # noqa: E402
from kerascnn.training.weight_decay import factors_of  # noqa: E402

TINY = {"width_multiplier": 0.125, "fc_units": 16}


def test_update_penalty_and_none_candidates_place_the_recipes_decay_as_named(monkeypatch):
    built = []

    def candidate(model, precision, jit, batch_size, infer_batch, image_size, steps, optim, model_options):
        # What keras_candidate does: build_models with the recipe's settings, on a tiny network.
        network, compiled, _ = build_models(model, 10, (16, 16, 3), {**model_options, **TINY}, optim, 10, 30)
        built.append((batch_size, optim.weight_decay, len(factors_of(compiled.optimizer)), len(network.losses)))
        return (lambda: None), None, 0, 0

    monkeypatch.setattr(bench, "keras_candidate", candidate)
    args = argparse.Namespace(recipe="fast", batch_size=None, image_size=8, steps=1, repeats=2)
    row = bench.bench("alexnet_cifar", args, "float32")
    # The recipe's decay 1e-3 on 8 kernels: in the optimizer, as 8 loss terms, or not at all.
    assert built == [(128, 1e-3, 8, 0), (128, 1e-3, 0, 8), (128, 0.0, 0, 0)]
    assert set(row["ms_per_step"]) == {"update", "penalty", "none"} and row["penalty_over_update"] > 0
    assert all(len(s) == 2 for s in row["seconds"].values())


def test_an_unknown_model_or_a_recipe_without_coupled_decay_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "rows.json"
    assert bench.main(["nosuchmodel", "--json", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()
    real = bench.RunConfig.from_flags

    def without_decay(model, recipe=None, **flags):
        return real(model, recipe=recipe, weight_decay=0.0, **flags)

    monkeypatch.setattr(bench.RunConfig, "from_flags", without_decay)
    assert bench.main(["alexnet_cifar", "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no coupled weight decay" in err[0] and not out.exists()
