"""tuning.spaces, the results folder rules and the `tune` CLI's bad-input errors (no training)."""

import itertools
import json

import keras
import keras_tuner as kt
import pytest

from kerascnn.cli.app import main
from kerascnn.errors import ConfigError
from kerascnn.models import model_defaults
from tuning import searchdir
from tuning.spaces import SPACES, Baseline, enumerate_grid, seed_grid, wide

STUDY_LR = {"adam": {1e-3, 1e-4}, "rmsprop": {1e-3, 1e-4}, "sgd": {1e-2, 1e-3}}


def study_configurations():
    """The 48 runs of the published study, as (optimizer, lr, batch, val_split, regularisation)."""
    return {
        (opt, lr, batch, split, reg)
        for opt in STUDY_LR
        for lr in STUDY_LR[opt]
        for batch, split, reg in itertools.product((32, 64), (0.3, 0.1), ("batch_norm", "dropout"))
    }


def key(settings):
    d = settings.describe()
    return d["optimizer"], d["learning_rate"], d["batch_size"], d["val_split"], d["regularization"]


def baseline(name="alexnet_cifar"):
    return Baseline(name, model_defaults(name), (32, 32))


def test_seed_grid_is_exactly_the_48_runs_of_the_study():
    grid = enumerate_grid(seed_grid, baseline())
    keys = [key(s) for _, s in grid]
    assert len(keys) == 48 and set(keys) == study_configurations()
    for _, s in grid:
        # Batch norm or dropout, never both, never neither; sgd with momentum 0.9.
        assert s.model_options["batch_norm"] != (s.model_options["dropout"] > 0)
        assert s.optim["momentum"] == 0.9


def test_kerastuner_grid_search_runs_the_same_48_trials_and_then_stops(tmp_path):
    class SpaceOnly(kt.HyperModel):
        def build(self, hp):
            seed_grid(hp, baseline())
            return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    tuner = kt.GridSearch(SpaceOnly(), objective="val_accuracy", directory=tmp_path, project_name="p")
    oracle = tuner.oracle
    seen = []
    for _ in range(60):  # bounded: a broken grid must fail, not loop
        trial = oracle.create_trial("t")
        if trial.status == "STOPPED":
            break
        hp = trial.hyperparameters
        seen.append(key(seed_grid(hp, baseline())))
        # Conditional scopes: the inactive optimizer group's rate is not a hyperparameter of the trial.
        assert ("lr_sgd" in hp.values) == (hp.values["optimizer"] == "sgd")
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(seen) == 48 and set(seen) == study_configurations()


@pytest.mark.parametrize("space", sorted(SPACES))
@pytest.mark.parametrize("model", ["alexnet_cifar", "vgg8", "resnet20", "googlenet_cifar"])
def test_defaults_of_every_space_build_the_model_baseline(space, model):
    defaults = model_defaults(model)
    settings = SPACES[space](kt.HyperParameters(), Baseline(model, defaults, (32, 32)))
    if space == "seed-grid" and defaults["batch_norm"] and defaults["dropout"]:
        # The documented exception: the study never combines them, its default arm is batch norm.
        assert settings.model_options == {"batch_norm": True, "dropout": 0.0}
        return
    for option, value in settings.model_options.items():
        assert defaults[option] == value, option


@pytest.mark.parametrize("model, lr, dropout", [("vgg8", 0.002, 0.0), ("alexnet_cifar", 0.01, 0.5)])
def test_wide_space_defaults_follow_the_model_default_recipe(model, lr, dropout):
    from kerascnn.config import RunConfig

    base = RunConfig.from_flags(model)  # what `tune MODEL` starts from: vgg8's scratch, alexnet_cifar's paper
    hp = kt.HyperParameters()
    wide(hp, Baseline.of(base, {**model_defaults(model), **base.model_options}, (32, 32)))
    space = {p.name: p for p in hp.space}
    assert space["lr_sgd"].default == pytest.approx(base.optim.lr) == lr
    assert space["dropout"].default == pytest.approx(dropout)


def test_wide_space_has_log_uniform_rates_and_conditional_learning_rates():
    hp = kt.HyperParameters()
    wide(hp, baseline())
    space = {p.name: p for p in hp.space}
    for name in ("lr_sgd", "lr_adaptive", "weight_decay"):
        assert space[name].sampling == "log"
    assert {"dropout", "batch_norm", "width_multiplier", "augment", "batch_size", "optimizer"} <= set(space)
    assert "width_multiplier" not in {p.name for p in _space(wide, "googlenet_cifar")}  # it has none
    assert not hp.is_active(space["lr_adaptive"])  # default optimizer is sgd


def _space(space, model):
    hp = kt.HyperParameters()
    space(hp, baseline(model))
    return hp.space


def test_wide_space_cannot_be_listed_as_a_grid():
    with pytest.raises(ConfigError, match="continuous"):
        enumerate_grid(wide, baseline())


def test_results_folder_of_another_search_is_refused_and_overwrite_starts_over(tmp_path):
    folder = tmp_path / "tune"
    ident = {"model": "vgg8", "space": "seed-grid", "tuner": "grid", "data": {"dataset": "synthetic"}}
    assert searchdir.prepare(folder, ident) is False
    assert searchdir.prepare(folder, ident) is True  # the same search: resume
    (folder / "search").mkdir()
    other = dict(ident, model="alexnet_cifar")
    with pytest.raises(ConfigError, match="different search"):
        searchdir.prepare(folder, other)
    assert searchdir.prepare(folder, other, overwrite=True) is False
    assert not (folder / "search").exists()
    assert json.loads((folder / "search.json").read_text())["model"] == "alexnet_cifar"
    stranger = tmp_path / "not-a-search"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a tuning results folder"):
        searchdir.prepare(stranger, ident, overwrite=True)
    assert (stranger / "precious.txt").exists()


def test_dry_run_lists_the_48_configurations(capsys):
    assert main(["tune", "alexnet_cifar", "--space", "seed-grid", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("alexnet_cifar, space seed-grid: 48 configurations")
    assert len(lines) == 2 + 48


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tune", "vgg8", "--space", "huge"], "unknown search space 'huge'"),
        (["tune", "vgg8", "--tuner", "genetic"], "unknown tuner 'genetic'"),
        (["tune", "vgg99"], "unknown model 'vgg99'"),
        (["tune", "vgg8", "--max-trials", "0"], "--max-trials must be a positive integer"),
        (["tune", "vgg8", "--tuner", "hyperband", "--max-trials", "3"], "drop --max-trials"),
        (["tune", "vgg8", "--distribution-strategy", "tpu"], "unknown distribution strategy"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(argv, message, capsys, tmp_path):
    assert main(argv + ["--results-dir", str(tmp_path / "r"), "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # nothing written


def test_a_results_folder_from_a_different_search_needs_overwrite(capsys, tmp_path):
    folder = tmp_path / "r"
    searchdir.prepare(
        folder,
        {"model": "alexnet_cifar", "space": "seed-grid", "tuner": "grid",
         "data": {"dataset": "synthetic", "data_dir": None, "image_size": None, "limit_train": 64, "augment": None}},
    )
    argv = ["tune", "vgg8", "--dataset", "synthetic", "--limit-train", "64", "--results-dir", str(folder)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "different search" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert json.loads((folder / "search.json").read_text())["model"] == "alexnet_cifar"  # untouched


def test_tune_report_of_a_folder_that_is_not_a_search(capsys, tmp_path):
    assert main(["tune-report", str(tmp_path)]) == 2
    assert "not a tuning results folder" in capsys.readouterr().err


def test_the_hypermodel_builds_and_compiles_what_the_hyperparameters_say():
    from kerascnn.config import RunConfig
    from kerascnn.data.synthetic import SyntheticSource
    from kerascnn.training import plan_run
    from kerascnn.training.context import runtime_context
    from tuning.hypermodel import CNNHyperModel

    base = RunConfig.from_flags(
        "vgg8", dataset="synthetic", model_options={"width_multiplier": 0.125}, precision="float32", jit=False
    )
    plan = plan_run(base)
    with runtime_context(plan) as runtime:
        hypermodel = CNNHyperModel(plan, seed_grid, SyntheticSource(num_train=64, num_test=16), runtime)
    hp = kt.HyperParameters()
    hp.values.update(
        {"optimizer": "adam", "lr_adaptive": 1e-4, "batch_size": 64, "val_split": 0.1, "regularization": "batch_norm"}
    )
    model = hypermodel.build(hp)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "BatchNormalization" in kinds and "Dropout" not in kinds
    config = hypermodel.trial_config(hp)  # what fit() gets: the trial's split and batch
    assert (config.data.batch_size, config.data.val_split) == (64, 0.1)
    # conv_init: vgg8's default recipe (scratch), a fixed option every trial keeps
    assert config.model_options == {"width_multiplier": 0.125, "batch_norm": True, "dropout": 0.0, "conv_init": "fan_in"}
