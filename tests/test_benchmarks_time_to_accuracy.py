"""benchmarks/time_to_accuracy.py: a real (tiny) run tested every epoch, its report, its resume.

Only that the script measures and reports; no figure is asserted.
"""

import json
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)

import time_to_accuracy  # noqa: E402


def test_reached_names_the_first_epoch_and_second_at_each_target():
    rows = [{"epoch": 1, "train_seconds": 10.0, "test_accuracy": 0.5},
            {"epoch": 2, "train_seconds": 20.0, "test_accuracy": 0.86},
            {"epoch": 3, "train_seconds": 30.0, "test_accuracy": 0.84}]
    assert time_to_accuracy.reached(rows, [0.5, 0.85, 0.9]) == {
        "0.50": {"epoch": 1, "seconds": 10.0}, "0.85": {"epoch": 2, "seconds": 20.0}, "0.90": None,
    }


@pytest.mark.parametrize("flip_shift_at", ["every", "last"])
def test_a_tiny_run_is_tested_every_epoch_outside_its_timed_training(tmp_path, capsys, monkeypatch, flip_shift_at):
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["time_to_accuracy.py", "resnet20", "--recipe", "fast"])
    argv = ["resnet20", "--recipe", "fast", "--epochs", "2", "--limit-train", "128", "--run-dir", str(run),
            "--precision", "float32", "--data-dir", "", "--flip-shift-at", flip_shift_at]
    assert time_to_accuracy.main(argv) == 0
    stdout = capsys.readouterr().out
    report = json.loads((run / time_to_accuracy.RESULT).read_text())
    assert report["model"] == "resnet20" and report["recipe"] == "fast" and "cores" in report["machine"]
    assert [r["epoch"] for r in report["rows"]] == [1, 2]
    history = [json.loads(json.dumps(r)) for r in report["rows"]]
    assert history[1]["train_seconds"] > history[0]["train_seconds"] > 0
    for row in history:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["test_flip_accuracy"] <= 1.0
    # The six flip-and-shift views: after every epoch, or only after the last (the run's figure).
    shifted = [r["epoch"] for r in history if 0.0 <= r.get("test_flip_shift_accuracy", -1.0) <= 1.0]
    assert shifted == ([1, 2] if flip_shift_at == "every" else [2])
    assert "flip + shift" in stdout  # the summary's final line: the last epoch has all three figures
    # The test after the last epoch is the run's own final figure: the same model, the same images.
    metrics = json.loads((run / "metrics.json").read_text())
    assert history[-1]["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert history[-1]["test_flip_accuracy"] == pytest.approx(metrics["test_flip_accuracy"], abs=1e-6)
    assert (run / time_to_accuracy.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "final:" in stdout and "90%:" in stdout


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
