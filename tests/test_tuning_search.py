"""Real (tiny) searches: trials.csv, summary, plots, HParams, export (resume after a kill: test_battery_interrupt.py)."""

import csv
import json
import pathlib

from kerascnn.cli.app import main
from kerascnn.config import RunConfig
from tuning import searchdir
from tuning.plots import PLOT_NAMES
from tuning.search import SearchRequest, run_search

ROOT = pathlib.Path(__file__).resolve().parents[1]
# vgg8 at 1/8 width on 64 generated 32x32 images, one epoch: a trial takes seconds.
TINY = ["--dataset", "synthetic", "--limit-train", "64", "--epochs", "1", "--width-multiplier", "0.125"]


def read_trials(folder):
    with open(pathlib.Path(folder) / searchdir.TRIALS_CSV, newline="") as f:
        return list(csv.DictReader(f))


def extras(folder, trial_id):
    return json.loads((pathlib.Path(folder) / "search" / f"trial_{trial_id}" / searchdir.EXTRAS).read_text())


def test_a_tiny_grid_search_writes_trials_csv_summary_plots_hparams_and_exports(tmp_path):
    base = RunConfig.from_flags(
        "vgg8", dataset="synthetic", limit_train=64, epochs=1, patience=1,
        model_options={"width_multiplier": 0.125}, export_dir=str(tmp_path / "exports"), serving_precision="bfloat16",
    )
    folder = tmp_path / "tune"
    request = SearchRequest(base, space="seed-grid", tuner="grid", max_trials=3, results_dir=str(folder), export=True)
    rows = run_search(request, log=lambda *_: None, verbose=0)

    assert len(rows) == 3
    table = read_trials(folder)
    assert [r["trial_id"] for r in table] == ["0", "1", "2"]
    assert {r["status"] for r in table} == {"COMPLETED"}
    for r in table:
        # Every hyperparameter, the flat settings and the measurements.
        assert r["hp:optimizer"] == r["optimizer"] == "sgd" and r["hp:lr_sgd"] == "0.01"
        assert r["regularization"] in ("batch_norm", "dropout") and r["width_multiplier"] == "0.125"
        assert r["epochs_run"] == "1"
        for column in ("best_train_accuracy", "best_val_accuracy", "test_accuracy"):
            assert 0.0 <= float(r[column]) <= 1.0
        assert float(r["wall_seconds"]) > 0 and float(r["seconds_per_epoch"]) > 0
    # Grid order: the last hyperparameter (regularisation) varies fastest.
    assert [r["regularization"] for r in table[:2]] == ["dropout", "batch_norm"]
    assert table[2]["val_split"] == "0.1"

    for name in PLOT_NAMES:
        png = folder / searchdir.PLOTS / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (folder / searchdir.SUMMARY).read_text()
    assert "## Best trials" in summary and "accuracy_vs_lr.png" in summary
    # TensorBoard's HParams plugin data, one run folder per trial.
    events = list((folder / searchdir.TENSORBOARD).rglob("*tfevents*"))
    assert any(b"hparams" in p.read_bytes() for p in events)
    # The best trial, exported like `fit --export`.
    export = tmp_path / "exports" / "vgg8" / "1"
    manifest = json.loads((export / "kerascnn.json").read_text())
    assert manifest["run_config"]["resolved"]["tuning_trial"] in {"0", "1", "2"}
    assert manifest["serving_dtype"] == "bfloat16"  # tune --export --serving-precision bfloat16
    assert (export / "saved_model.pb").exists()

    # tune-report rebuilds everything from the files alone.
    (folder / searchdir.TRIALS_CSV).unlink()
    assert main(["tune-report", str(folder)]) == 0
    assert read_trials(folder) == table


def test_a_tune_trial_records_the_precision_strategy_and_record_fit_records_on_this_machine(tmp_path):
    """tune plans and runs through fit's phases: same `auto` choices, same strategy, same record fields."""
    from kerascnn.training.fit import fit

    flags = dict(dataset="synthetic", limit_train=64, epochs=1, model_options={"width_multiplier": 0.125})
    run = fit(RunConfig.from_flags("vgg8", run_dir=str(tmp_path / "run"), **flags), log=lambda *_: None, verbose=0)
    fitted = json.loads((run.run_dir / "config.json").read_text())
    folder = tmp_path / "tune"
    request = SearchRequest(RunConfig.from_flags("vgg8", **flags), space="seed-grid", tuner="grid", max_trials=1,
                            results_dir=str(folder))
    run_search(request, log=lambda *_: None, verbose=0)
    trial = extras(folder, "0")["run_config"]
    assert (trial["precision"], trial["jit"]) == (fitted["precision"], fitted["jit"])
    assert trial["precision"] != "auto" and trial["resolved"]["auto"] == fitted["resolved"]["auto"]
    assert trial["resolved"]["strategy"] == fitted["resolved"]["strategy"]
    assert set(trial["resolved"]) == set(fitted["resolved"])  # the same typed RunRecord
    assert trial["resolved"]["class_names"] == fitted["resolved"]["class_names"]
    assert trial["resolved"]["batch_size"] == 32 and trial["resolved"]["params"] > 0  # seed-grid's first batch


def test_a_diverging_trial_stops_at_its_first_non_finite_loss_and_says_where(tmp_path, monkeypatch):
    """A trial whose loss turns NaN stops there (as `fit` does), not after its remaining epochs."""
    from conftest import fill_weights_with_nan
    from kerascnn.training.callbacks import FaultPoints
    from tuning import hypermodel

    class PoisonAfterFirstBatch(FaultPoints):
        """Every weight NaN after the first batch: the second batch's loss is NaN on any CPU.

        (A learning rate of 1e30 was not enough: whether the overflowing
        activations reach the loss as NaN depends on how the host's oneDNN
        kernels propagate NaN through ReLU and max pooling; on some hosts
        the loss stayed finite.)
        """

        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if batch == 0:
                fill_weights_with_nan(self.model)

    monkeypatch.setattr(hypermodel, "FaultPoints", PoisonAfterFirstBatch)
    base = RunConfig.from_flags("vgg8", dataset="synthetic", limit_train=64, epochs=3,
                                model_options={"width_multiplier": 0.125}, precision="float32")
    folder = tmp_path / "tune"
    run_search(SearchRequest(base, space="seed-grid", tuner="grid", max_trials=1, results_dir=str(folder)),
               log=lambda *_: None, verbose=0)
    (row,) = read_trials(folder)
    assert row["diverged"] == "epoch 1 batch 2: loss nan"
    assert row["epochs_run"] == "1"  # not 3
    assert f"trial 0 ({row['diverged']})" in (folder / searchdir.SUMMARY).read_text()
