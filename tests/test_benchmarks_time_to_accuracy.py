"""benchmarks/time_to_accuracy.py: a real (tiny) run tested every epoch, its report, its resume.

Only that the script measures and reports; no figure is asserted.
"""

import json
import os
import sys

import pytest

from kerascnn.recipe_results import measured

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)

import time_to_accuracy  # noqa: E402

# Every epoch of these runs tests resnet20 on every test image, plain and mirrored, and the last
# epoch on six views; no figure is asserted, only that the report's rows are the run's own, which
# holds on any number of images: `small_synthetic_test_set` (conftest) keeps them at 100.


def test_reached_names_the_first_epoch_and_second_at_each_target():
    rows = [{"epoch": 1, "train_seconds": 10.0, "test_accuracy": 0.5},
            {"epoch": 2, "train_seconds": 20.0, "test_accuracy": 0.86},
            {"epoch": 3, "train_seconds": 30.0, "test_accuracy": 0.84}]
    assert time_to_accuracy.reached(rows, [0.5, 0.85, 0.9]) == {
        "0.50": {"epoch": 1, "seconds": 10.0}, "0.85": {"epoch": 2, "seconds": 20.0}, "0.90": None,
    }


def test_the_six_flip_and_shift_views_are_tested_every_epoch_or_after_the_last_only():
    assert [time_to_accuracy.measures_flip_shift(e, 3, "every") for e in (1, 2, 3)] == [True, True, True]
    assert [time_to_accuracy.measures_flip_shift(e, 3, "last") for e in (1, 2, 3)] == [False, False, True]


def test_a_tiny_run_interrupted_twice_resumes_and_is_tested_every_epoch_outside_its_timed_training(
    tmp_path, capsys, monkeypatch, small_synthetic_test_set
):
    from kerascnn import faults
    from kerascnn.errors import StorageError
    from kerascnn.storage.history import read_history

    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["time_to_accuracy.py", "resnet20", "--recipe", "fast"])
    argv = ["resnet20", "--recipe", "fast", "--epochs", "2", "--limit-train", "128", "--run-dir", str(run),
            "--precision", "float32", "--data-dir", "", "--flip-shift-at", "last", "--set", "cutout=4"]
    # The disk fails just after epoch 1's backup, before its test: the run stops there, resumable,
    # as a session that ends during a test leaves it. The report, written before the first epoch,
    # keeps the run's own command and options for the resume.
    monkeypatch.setenv(faults.ENV, "eio@backup.after:1")
    faults._hits.clear()
    with pytest.raises(StorageError, match="fit --resume"):
        time_to_accuracy.main(argv)
    monkeypatch.delenv(faults.ENV)
    started = json.loads((run / time_to_accuracy.RESULT).read_text())
    assert started["rows"] == [] and started["flip_shift_at"] == "last" and started["overrides"] == ["cutout=4"]
    # The run starts by saying what its recipe measured and where (not again on resuming).
    assert f"recipe fast measured: {measured('resnet20', 'fast')}" in capsys.readouterr().out

    # Resumed with no flags but the run directory: epoch 1's restored model is tested before epoch 2
    # trains, then epoch 2 trains and the disk fails again after its backup, before its test.
    monkeypatch.setattr(sys, "argv", ["time_to_accuracy.py", "--resume", str(run)])
    monkeypatch.setenv(faults.ENV, "eio@backup.after:1")
    faults._hits.clear()
    with pytest.raises(StorageError, match="fit --resume"):
        time_to_accuracy.main(["--resume", str(run)])
    monkeypatch.delenv(faults.ENV)
    first = json.loads((run / time_to_accuracy.RESULT).read_text())
    assert [r["epoch"] for r in first["rows"]] == [1] and first["overrides"] == ["cutout=4"]
    assert "epoch 1: " in capsys.readouterr().out

    # Resumed again, nothing is left to train: epoch 2's model is tested then, the report's first
    # row kept, and the six views kept for the last epoch (the run's own --flip-shift-at).
    assert time_to_accuracy.main(["--resume", str(run)]) == 0
    stdout = capsys.readouterr().out
    report = json.loads((run / time_to_accuracy.RESULT).read_text())
    assert report["model"] == "resnet20" and report["recipe"] == "fast" and "cores" in report["machine"]
    assert [r["epoch"] for r in report["rows"]] == [1, 2] and report["rows"][0] == first["rows"][0]
    assert "epoch 1: " not in stdout and "epoch 2: " in stdout and "recipe fast measured" not in stdout
    # Each continuation and each row names its host: seconds from two machines are never added unsaid.
    assert [r["command"].split()[1:] for r in report["resumes"]] == [["--resume", str(run)]] * 2
    assert all("cores" in r["machine"] for r in report["resumes"] + report["rows"])
    history = report["rows"]
    trained = read_history(run / "history.csv")  # cumulative over the resumes: the run's own epoch times
    assert history[1]["train_seconds"] == pytest.approx(history[0]["train_seconds"] + trained[1]["epoch_seconds"])
    assert history[0]["train_seconds"] == pytest.approx(trained[0]["epoch_seconds"]) and trained[1]["epoch_seconds"] > 0
    assert history[1]["train_accuracy"] == pytest.approx(trained[1]["accuracy"])
    for row in history:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["test_flip_accuracy"] <= 1.0
    assert [r["epoch"] for r in history if 0.0 <= r.get("test_flip_shift_accuracy", -1.0) <= 1.0] == [2]
    assert "flip + shift" in stdout  # the summary's final line: the last epoch has all three figures
    # The test after the last epoch is the run's own final figure: the same model, the same images.
    metrics = json.loads((run / "metrics.json").read_text())
    assert history[-1]["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert history[-1]["test_flip_accuracy"] == pytest.approx(metrics["test_flip_accuracy"], abs=1e-6)
    assert (run / time_to_accuracy.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "final:" in stdout and "90%:" in stdout


def test_rows_missed_before_the_backup_s_epoch_add_their_seconds_to_its_row(tmp_path, monkeypatch):
    """A report some epochs behind its backup (a run of an older script): the row that catches up
    carries every untested epoch's training seconds, so the cumulative figures lose none."""
    callback = time_to_accuracy.TestEveryEpoch(tmp_path, {"rows": [{"epoch": 1, "train_seconds": 10.0}]})
    callback.averaged_weights = None
    monkeypatch.setattr(time_to_accuracy, "backup_epoch", lambda folder: 3)
    monkeypatch.setattr(time_to_accuracy, "read_history", lambda path: [
        {"epoch": "0", "epoch_seconds": "10", "accuracy": "0.3"}, {"epoch": "1", "epoch_seconds": "11", "accuracy": "0.4"},
        {"epoch": "2", "epoch_seconds": "12", "accuracy": "0.5"}])
    calls = []
    monkeypatch.setattr(callback, "_test", lambda *args: calls.append(args))
    callback._catch_up()
    assert calls == [(3, 23.0, 0.5)]
    monkeypatch.setattr(time_to_accuracy, "backup_epoch", lambda folder: 1)  # the backup's epoch has its row
    callback._catch_up()
    assert len(calls) == 1


@pytest.mark.parametrize("stopped_before_its_test", [False, True], ids=["whole", "resumed"])
def test_a_run_with_a_weight_average_tests_the_raw_weights_beside_it(
    tmp_path, capsys, monkeypatch, small_synthetic_test_set, stopped_before_its_test
):
    """--ema: the epoch tests the average, then the raw weights it set aside, then holds the average again.

    Stopped after its backup and before its test, the run's resumed process tests the restored
    model, whose backup holds the raw weights, with the average put in as at the epoch's end.
    """
    import keras
    import numpy as np

    from kerascnn import faults
    from kerascnn.errors import StorageError

    seen = []  # (which test, the first convolution's kernel then)

    def recording(name, real):
        def test(network, batches):
            seen.append((name, np.array(network.get_layer("conv1_conv").kernel)))
            return real(network, batches)
        return test

    monkeypatch.setattr(time_to_accuracy, "test_time_metrics", recording("six views", time_to_accuracy.test_time_metrics))
    monkeypatch.setattr(time_to_accuracy, "plain_and_flip_metrics", recording("raw", time_to_accuracy.plain_and_flip_metrics))
    run = tmp_path / "run"
    argv = ["resnet20", "--recipe", "fast", "--epochs", "1", "--limit-train", "128", "--run-dir", str(run),
            "--precision", "float32", "--data-dir", "", "--set", "ema=0.9", "--set", "batch_size=64"]
    if stopped_before_its_test:
        monkeypatch.setenv(faults.ENV, "eio@backup.after:1")
        faults._hits.clear()
        with pytest.raises(StorageError, match="fit --resume"):
            time_to_accuracy.main(argv)
        monkeypatch.delenv(faults.ENV)
        assert seen == []
        argv = ["--resume", str(run)]
    assert time_to_accuracy.main(argv) == 0
    (row,) = json.loads((run / time_to_accuracy.RESULT).read_text())["rows"]
    assert 0.0 <= row["raw_test_accuracy"] <= 1.0 and 0.0 <= row["raw_test_flip_accuracy"] <= 1.0
    assert [name for name, _ in seen] == ["six views", "raw"] and not np.array_equal(seen[0][1], seen[1][1])
    # The average was tested first: the model the run saved at the epoch's end holds it.
    saved = keras.saving.load_model(run / "best.keras", compile=False)
    assert np.array_equal(seen[0][1], np.array(saved.get_layer("conv1_conv").kernel))
    if not stopped_before_its_test:
        # The average went back in after the raw test: the run's own final figure is the average's.
        # (A resumed process recomputes the average's batch-norm statistics from its own first
        # batches, as it does at every later epoch's end, so its figure is not the first process's.)
        metrics = json.loads((run / "metrics.json").read_text())
        assert row["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert "raw weights (not averaged)" in capsys.readouterr().out


def test_set_overrides_split_run_settings_from_model_options():
    settings, options = time_to_accuracy.overrides(
        ["lr=0.1", "dropout=0", "schedule=cosine", "nesterov=False", "logit_scale=1", "cutout=0", "ema=0.99"]
    )
    assert settings == {"lr": 0.1, "schedule": "cosine", "nesterov": False, "cutout": 0, "ema": 0.99}
    assert options == {"dropout": 0, "logit_scale": 1}
    from kerascnn.errors import ConfigError

    with pytest.raises(ConfigError, match="NAME=VALUE"):
        time_to_accuracy.overrides(["lr"])


@pytest.mark.parametrize("argv, says", [
    (["alexnet_cifar", "--set", "lr=-1"], "lr must be a positive number"),
    (["alexnet_cifar", "--recipe", "nope"], "has no recipe 'nope'"),
    (["alexnet_cifar", "--set", "lr"], "--set takes NAME=VALUE"),
    (["alexnet_cifar", "--data-dir", ""], "give --data-dir"),
])
def test_bad_input_is_one_line_on_stderr_exit_2_and_no_run_directory(tmp_path, capsys, argv, says):
    from kerascnn.errors import script_exit_status

    run = tmp_path / "run"
    code = script_exit_status(time_to_accuracy.main, "time_to_accuracy.py",
                              argv + (["--limit-train", "16"] if "--data-dir" not in argv else []) + ["--run-dir", str(run)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("time_to_accuracy.py: error: ") and says in err
    assert not run.exists()


def test_set_none_switches_off_what_the_recipe_turns_on():
    from kerascnn.config import RunConfig
    from kerascnn.errors import ConfigError

    config = RunConfig.from_flags("alexnet_cifar", recipe="fast", ema=0.99)
    settings, _ = time_to_accuracy.overrides(["ema=None"])
    assert settings == {"ema": None}
    off = time_to_accuracy.switch_off(config, list(settings))
    assert config.optim.ema == 0.99 and off.optim.ema is None
    assert off.optim.lr == config.optim.lr and off.data.batch_size == config.data.batch_size
    with pytest.raises(ConfigError, match="cutout"):  # a setting that has no "off" value is refused, not guessed
        time_to_accuracy.switch_off(config, ["cutout"])
