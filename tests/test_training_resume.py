"""Resume as people use it, extending a run's budget, and replaying a run from its config.json."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from kerascnn.cli.app import main
from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history
from kerascnn.training import extension
from kerascnn.training.fit import fit
from kerascnn.training.replay import replay_config
from kerascnn.training.resume import check_resume_flags
from interrupt import StopAfter

QUIET = dict(log=lambda *_: None, verbose=0)
# The command line of a tiny run (2 steps an epoch); the tests append to it.
TINY = [
    "fit", "vgg8", "--dataset", "synthetic", "--limit-train", "64", "--batch-size", "32", "--epochs", "2",
    "--width-multiplier", "0.125", "--precision", "float32", "--schedule", "cosine", "--lr", "0.05",
]


def tiny_config(run_dir, **flags):
    settings = dict(
        dataset="synthetic", limit_train=64, batch_size=32, epochs=2, schedule="cosine", lr=0.05,
        precision="float32", run_dir=str(run_dir), model_options={"width_multiplier": 0.125},
    )
    settings.update(flags)
    return RunConfig.from_flags("vgg8", **settings)


def saved_run(run_dir, **flags):
    """A run directory holding only the config.json `fit` would write (enough for the flag checks)."""
    config = tiny_config(run_dir, **flags)
    run_dir.mkdir()
    rundir.write_json(run_dir / rundir.CONFIG, config.to_dict())
    return run_dir


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- fit MODEL [flags] --resume RUN_DIR -----------------------------------------


def test_resume_with_the_same_command_continues_and_differing_flags_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(run), extra_callbacks=[StopAfter(0)], **QUIET)
    before = snapshot(run)

    # The command as first typed, with other values: refused, each flag with both values, nothing touched.
    code = main([*TINY, "--lr", "0.1", "--seed", "3", "--run-dir", "run", "--resume", "run"])
    err = one_error_line(capsys)
    assert code == 2
    assert "--lr 0.1 (saved 0.05)" in err and "--seed 3 (saved 0)" in err and "fit --config run --lr 0.1 --seed 3" in err
    assert "--epochs" not in err.split("differ")[1].split(";")[0]  # equal flags are not named
    assert snapshot(run) == before

    # The same command with --resume appended: accepted, continues from epoch 1.
    code = main([*TINY, "--run-dir", "run", "--resume", "run"])
    assert code == 0, capsys.readouterr().err
    assert [int(r["epoch"]) for r in read_history(run / rundir.HISTORY)] == [0, 1]
    assert json.loads((run / rundir.METRICS).read_text())["epochs_run"] == 2


def test_resume_flags_equal_in_value_pass_and_each_difference_is_named(tmp_path):
    run = saved_run(tmp_path / "run")
    config = RunConfig.read(run)
    config = config.replace(resolved=config.resolved.replace(auto={"jit": "CPU"}, image_shape=(32, 32, 3)))
    rundir.write_json(run / rundir.CONFIG, config.to_dict())
    same = dict(lr=0.05, batch_size=32, limit_train=64, dataset="synthetic", jit="auto", image_size=(32, 32),
                run_dir=str(run / ".." / "run"), width_multiplier=0.125, precision="float32")
    assert check_resume_flags(run, "vgg8", same, model_options=("width_multiplier",)) is None
    assert check_resume_flags(run, "vgg8", {"epochs": 2}) is None
    assert check_resume_flags(run, None, {"epochs": 5}) == 5  # above the budget: an extension
    with pytest.raises(ConfigError) as error:
        check_resume_flags(run, "vgg11", {"epochs": 1, "precision": "auto", "nesterov": True,
                                          "width_multiplier": 0.25}, model_options=("width_multiplier",))
    message = str(error.value)
    for part in ("model vgg11 (saved vgg8)", "--epochs 1 (saved 2; a run can be extended, not shortened)",
                 "--precision auto (saved float32)", "--nesterov (saved off)", "--width-multiplier 0.25 (saved 0.125)"):
        assert part in message, message


# --- fit --resume RUN_DIR --epochs N: extending the budget ----------------------------


def tensorboard_epochs(run):
    """The epochs (steps) of the `epoch_loss` summaries in every event file of the run's training logs."""
    steps = []
    for path in sorted((run / rundir.TENSORBOARD / "train").glob("*tfevents*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if any(v.tag == "epoch_loss" for v in event.summary.value):
                steps.append(event.step)
    return sorted(steps)


def test_extending_a_finished_run_by_two_epochs_continues_history_schedule_checkpoint_and_tensorboard(tmp_path):
    run = tmp_path / "run"
    first = fit(tiny_config(run, epochs=3), **QUIET)
    assert (run / rundir.BACKUP).exists()  # kept: the state to extend from
    rows = read_history(run / rundir.HISTORY)

    result = fit(resume_dir=run, epochs=5, **QUIET)
    history = read_history(run / rundir.HISTORY)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3, 4]
    assert history[:3] == rows  # the first epochs are kept as they were
    # Cosine over the first 3 epochs, then a new cosine segment over the 2 added ones (SGDR's warm
    # restart). Each row holds the rate after the epoch's last step; a step count restarted at 0
    # would give 0.75 x 0.05 at epoch 3 instead of 0.5 x 0.05.
    expected = [0.05 / 2 * (1 + math.cos(math.pi * t)) for t in (1 / 3, 2 / 3, 1, 1 / 2, 1)]
    np.testing.assert_allclose([r["learning_rate"] for r in history], expected, atol=1e-6)

    config = json.loads((run / rundir.CONFIG).read_text())
    assert config["epochs"] == 5
    [ext] = config["extensions"]
    assert (ext["from_epochs"], ext["to_epochs"], ext["finished_before"]) == (3, 5, True)
    assert ext["previous_test_accuracy"] == pytest.approx(first.metrics["test_accuracy"])
    assert "cosine" in ext["schedule"] and "epochs 4-5" in ext["schedule"]
    assert RunConfig.read(run).first_budget == 3
    metrics = json.loads((run / rundir.METRICS).read_text())
    assert metrics["epochs_run"] == 5
    best = max(r["val_accuracy"] for r in history)
    assert metrics["best_val_accuracy"] == pytest.approx(best)  # chosen over all five epochs
    assert result.metrics["best_epoch"] == 1 + [r["val_accuracy"] for r in history].index(best)
    assert tensorboard_epochs(run) == [0, 1, 2, 3, 4]

    with pytest.raises(ConfigError, match="already finished its 5 epochs"):
        fit(resume_dir=run, **QUIET)
    with pytest.raises(ConfigError, match="extended, not shortened"):
        fit(resume_dir=run, epochs=4, **QUIET)


def test_a_finished_run_without_its_training_state_cannot_be_extended(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = saved_run(tmp_path / "run")
    rundir.write_json(run / rundir.METRICS, {"test_accuracy": 0.5, "epochs_run": 2})
    before = snapshot(run)
    assert main(["fit", "--resume", "run", "--epochs", "4"]) == 2
    assert "cannot be extended" in one_error_line(capsys) and snapshot(run) == before


def test_the_schedule_of_an_extended_run_is_one_segment_per_extension():
    config = RunConfig.from_flags("vgg8", epochs=4, schedule="onecycle", lr=0.2, warmup_epochs=1.0)
    config = extension.extended(extension.extended(config, 6), 10)
    assert extension.budgets(config) == [(0, 4), (4, 6), (6, 10)]
    lr = extension.run_learning_rate(config.optim, 10, config)
    # one-cycle 0 -> 0.2 (1 epoch) -> 0 (epoch 4); 0 -> 0.2 (0.5 epoch) -> 0 (epoch 6); 0 -> 0.2 (1 epoch) -> 0.
    steps = [0, 10, 40, 45, 60, 70, 100]
    np.testing.assert_allclose([float(lr(s)) for s in steps], [0, 0.2, 0, 0.2, 0, 0.2, 0], atol=1e-6)
    restored = extension.Segments.from_config(lr.get_config())
    np.testing.assert_allclose([float(restored(s)) for s in steps], [float(lr(s)) for s in steps])
    with pytest.raises(ConfigError, match="end at epochs"):
        config.replace(epochs=12)


def test_each_segment_of_an_extended_run_ends_at_the_final_fraction_of_the_peak():
    config = RunConfig.from_flags(
        "vgg8", epochs=4, schedule="onecycle", lr=0.2, warmup_epochs=1.0, final_lr_fraction=0.1
    )
    config = extension.extended(config, 6)
    lr = extension.run_learning_rate(config.optim, 10, config)
    # 0 -> 0.2 (epoch 1) -> 0.02 (epoch 4); then 0 -> 0.2 (epoch 4.5) -> 0.02 (epoch 6).
    np.testing.assert_allclose([float(lr(s)) for s in (10, 39, 45, 60)], [0.2, 0.026, 0.2, 0.02], atol=1e-6)
    assert extension.describe_continuation(config.optim, 4, 6, 4).endswith("0.2 -> 0.02")


# --- fit --config PATH: replay ---------------------------------------------------------


def test_replay_starts_a_new_run_with_the_same_settings_and_an_override(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*TINY, "--epochs", "1", "--run-dir", "first"]) == 0
    assert main(["fit", "--config", "first", "--seed", "1", "--run-dir", "second"]) == 0, capsys.readouterr().err
    old = json.loads((tmp_path / "first" / rundir.CONFIG).read_text())
    new = json.loads((tmp_path / "second" / rundir.CONFIG).read_text())
    assert new["seed"] == 1 and old["seed"] == 0
    assert new["replayed_from"] == {
        "config": str((tmp_path / "first" / rundir.CONFIG).resolve()), "run_dir": "first", "overrides":
        {"seed": 1, "run_dir": "second"},
    }
    for key in ("model", "model_options", "data", "optim", "epochs", "precision", "recipe"):
        assert new[key] == old[key], key
    assert (tmp_path / "second" / rundir.METRICS).exists()  # a whole new run


def test_replay_overrides_epochs_keeping_the_warmup_share_and_reads_older_configs(tmp_path):
    run = saved_run(tmp_path / "run", schedule="onecycle", warmup_epochs=0.4, epochs=2)
    config = replay_config(run, flags={"epochs": 5, "model_options": {"width_multiplier": 0.25}})
    assert config.epochs == 5 and config.optim.warmup_epochs == pytest.approx(1.0)
    # The given option replaces the saved one; the saved run's others (vgg8's scratch recipe) are kept.
    assert config.model_options == {"width_multiplier": 0.25, "dropout": 0.0, "conv_init": "fan_in"}
    assert config.recipe == "scratch" and config.run_dir is None
    assert config.replayed_from["overrides"] == {"epochs": 5, "model_options": {"width_multiplier": 0.25}}
    # A config.json from before recipes, extensions and the typed record still replays.
    old = json.loads((run / rundir.CONFIG).read_text())
    for key in ("recipe", "extensions", "replayed_from", "resolved"):
        old.pop(key)
    del old["optim"]["ema"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert replay_config(tmp_path / "old.json").optim == RunConfig.read(run).optim


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        (json.dumps({"module": "keras", "class_name": "Functional", "config": {}}), "is not the config.json of a kerascnn run"),
        (json.dumps({"model": "vgg8", "data": {}, "optim": {}, "turbo": True,
                     "resolved": {"versions": {"kerascnn": "9.0"}}}), "written by kerascnn 9.0) has settings this"),
        (json.dumps({"model": "vgg8", "data": {"batch_size": 0}, "optim": {}}), "batch_size must be a positive"),
    ],
)
def test_a_missing_or_foreign_config_is_refused_in_one_line(content, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    assert main(["fit", "--config", "config.json", "--epochs", "1"]) == 2
    assert fragment in one_error_line(capsys)
    assert not (tmp_path / "runs").exists()
