"""A study interrupted during its second arm resumes (fit's own resume) to the same report.

A user's study file, two arms of a tiny VGG for two epochs: the study is
stopped at the end of the second arm's first epoch (tests/interrupt.py's
Ctrl-C), then the same command continues it: the first arm is kept, the
second resumes from its backup, and the report's numbers are those of the
second arm run without interruption. No dropout, whose masks are not part
of the checkpoint (tests/test_training_faults.py says the same).
"""

import csv
import importlib
import io
import json

import pytest
from interrupt import StopAfter

from kerascnn.cli.app import main
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history

STUDY = """
[study]
name = "two-vggs"
title = "Two tiny VGGs"
seeds = [3]

[settings]
model_options = { dropout = 0.0, width_multiplier = 0.125 }
dataset = "synthetic"
limit_train = 40
batch_size = 20
image_size = 16
epochs = 2
precision = "float32"

[budget.tiny]
description = "two epochs of 40 generated images"

[[arm]]
name = "first"
model = "vgg8"
augment = "none"

[[arm]]
name = "second"
model = "vgg11"
label = "VGG-11"
"""

# Columns of results.csv that do not depend on time.
STABLE = ("arm", "model", "seeds", "test_accuracy", "test_accuracies", "train_accuracy", "overfitting_gap",
          "epochs", "params", "macs")


def results(folder):
    rows = csv.DictReader(io.StringIO((folder / "results.csv").read_text()))
    return {r["arm"]: {k: r[k] for k in STABLE} for r in rows}


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "two-vggs.toml"
    path.write_text(STUDY)
    return path


def test_a_study_killed_in_its_second_arm_resumes_to_the_same_report_and_then_trains_nothing(study_file, tmp_path, monkeypatch, capsys):
    fit_module = importlib.import_module("kerascnn.training.fit")
    real_fit = fit_module.fit

    def fit_stopping_the_second_arm(config=None, resume_dir=None, **kwargs):
        if config is not None and config.run_dir.endswith("second-seed3"):
            kwargs["extra_callbacks"] = [StopAfter(0)]
        return real_fit(config, resume_dir, **kwargs)

    study = tmp_path / "study"
    argv = ["study", str(study_file), "--budget", "tiny", "--out", str(study)]
    monkeypatch.setattr(fit_module, "fit", fit_stopping_the_second_arm)
    assert main(argv) == 130
    assert "interrupted (run the same command again to continue)" in capsys.readouterr().err
    runs = study / "runs"
    assert (runs / "first-seed3" / rundir.METRICS).exists()
    assert not (runs / "second-seed3" / rundir.METRICS).exists()
    assert [int(r["epoch"]) for r in read_history(runs / "second-seed3" / rundir.HISTORY)] == [0]
    assert not (study / "report.md").exists()

    monkeypatch.setattr(fit_module, "fit", real_fit)
    first_metrics = (runs / "first-seed3" / rundir.METRICS).read_text()
    assert main(argv) == 0
    log = capsys.readouterr().out
    assert "[1/2] first-seed3: finished earlier, kept" in log and "[2/2] second-seed3: resuming" in log
    assert (runs / "first-seed3" / rundir.METRICS).read_text() == first_metrics  # not trained again
    assert [int(r["epoch"]) for r in read_history(runs / "second-seed3" / rundir.HISTORY)] == [0, 1]

    # The second arm alone, never interrupted: the same numbers in the report.
    reference = tmp_path / "reference"
    assert main(["study", str(study_file), "--budget", "tiny", "--out", str(reference), "--arms", "second"]) == 0
    resumed, uninterrupted = results(study), results(reference)
    for key in ("arm", "model", "seeds", "epochs", "params", "macs"):
        assert resumed["second"][key] == uninterrupted["second"][key], key
    for key in ("test_accuracy", "train_accuracy", "overfitting_gap"):
        assert float(resumed["second"][key]) == pytest.approx(float(uninterrupted["second"][key]), abs=1e-6), key
    for got, want in zip(read_history(runs / "second-seed3" / rundir.HISTORY),
                         read_history(reference / "runs" / "second-seed3" / rundir.HISTORY)):
        for key in ("loss", "accuracy", "learning_rate"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    # The reference trained only the arm asked for; its report lists the other as not run yet.
    assert set(uninterrupted) == {"first", "second"} and uninterrupted["first"]["seeds"] == "0"
    identity = json.loads((study / "study.json").read_text())
    assert [r["name"] for r in identity["runs"]] == ["first-seed3", "second-seed3"]

    # Once more: everything is finished, nothing trains.
    stamps = [(runs / r / rundir.METRICS).stat().st_mtime_ns for r in ("first-seed3", "second-seed3")]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier, kept") == 2
    assert [(runs / r / rundir.METRICS).stat().st_mtime_ns for r in ("first-seed3", "second-seed3")] == stamps
    # The same folder for another budget: refused, nothing touched.
    study_file.write_text(STUDY.replace("[budget.tiny]", "[budget.other]\nepochs = 1\n\n[budget.tiny]"))
    assert main(["study", str(study_file), "--budget", "other", "--out", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a different study run (budget 'tiny' there, 'other' here)" in err
