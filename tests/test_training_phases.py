"""The phases of `fit` on their own, without training: plan, runtime context, record, callbacks."""

import json
import os

import keras
import pytest

from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError, DataError
from kerascnn.record import RunRecord
from kerascnn.runtime import hardware
from kerascnn.runtime.hardware import Hardware
from kerascnn.storage import rundir
from kerascnn.storage.history import write_history
from kerascnn.training import callbacks as cb
from kerascnn.training.context import _environment, runtime_context
from kerascnn.training.plan import plan_run

PLAIN_CPU = Hardware(cpu_flags=frozenset({"avx2", "fma"}))
ZEN4 = Hardware(cpu_flags=frozenset({"avx512f", "avx512_bf16"}))

# A config.json "resolved" object as fit wrote it before the typed record
# (2026-11-23: no preprocessing, augmentation, auto or transfer yet).
OLD_RESOLVED = {
    "source": "synthetic",
    "class_names": [f"class_{i}" for i in range(10)],
    "num_classes": 10,
    "image_shape": [32, 32, 3],
    "mean": [120.0, 121.0, 122.0],
    "std": [60.0, 61.0, 62.0],
    "num_train": 900,
    "num_val": 100,
    "num_test": 1000,
    "strategy": "default strategy (1 CPU)",
    "replicas": 1,
    "batch_size": 128,
    "global_batch": 128,
    "lr": 0.01,
    "steps_per_epoch": 7,
    "params": 1234,
    "a_key_of_a_future_version": {"kept": True},
}


# --- plan ---------------------------------------------------------------------


def test_plan_resolves_auto_with_reasons_and_touches_no_process_state(monkeypatch):
    monkeypatch.setattr(hardware, "describe", lambda: ZEN4)
    policy = keras.mixed_precision.global_policy().name
    tf_config = os.environ.get("TF_CONFIG")
    plan = plan_run(RunConfig.from_flags("vgg11", epochs=3, lr=0.05, scale_lr="linear"))
    assert (plan.config.precision, plan.config.jit) == ("mixed_bfloat16", False)
    assert set(plan.auto_reasons) == {"precision", "jit"} and "AVX512-BF16" in plan.auto_reasons["precision"]
    assert keras.mixed_precision.global_policy().name == policy and os.environ.get("TF_CONFIG") == tf_config
    assert not plan.resumed and plan.placement is None and plan.transfer.kind is None
    assert plan.optim_for(4).lr == pytest.approx(0.2)  # --scale-lr linear, 4 replicas
    assert plan.optim_for(1).lr == pytest.approx(0.05)


def test_plan_keeps_explicit_settings_and_checks_input_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "describe", lambda: pytest.fail("hardware read without auto"))
    plan = plan_run(RunConfig(model="vgg11", precision="float32", jit=False))
    assert plan.auto_reasons == {} and plan.config.precision == "float32"
    with pytest.raises(ConfigError, match="unknown model 'vgg12'"):
        plan_run(RunConfig(model="vgg12", precision="float32", jit=False))
    with pytest.raises(ConfigError, match="--model-parallel splits the two towers of alexnet"):
        plan_run(RunConfig(model="vgg11", model_parallel=True, precision="float32", jit=False))
    with pytest.raises(DataError, match="does not exist"):
        plan_run(resume_dir=tmp_path / "no-such-run")
    finished = tmp_path / "finished"
    finished.mkdir()
    rundir.write_json(finished / rundir.CONFIG, RunConfig(model="vgg11", precision="float32", jit=False).to_dict())
    rundir.write_json(finished / rundir.METRICS, {"test_accuracy": 0.5})
    with pytest.raises(ConfigError, match="already finished"):
        plan_run(resume_dir=finished)


def test_a_resumed_plan_keeps_the_concrete_choices_of_its_config_json(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "describe", lambda: pytest.fail("resume re-resolved auto"))
    config = RunConfig(model="vgg11", precision="mixed_bfloat16", jit=False, resolved=OLD_RESOLVED)
    rundir.write_json(tmp_path / rundir.CONFIG, config.to_dict())
    plan = plan_run(resume_dir=tmp_path)
    assert plan.resumed and plan.resume_dir == tmp_path
    assert plan.config.precision == "mixed_bfloat16" and plan.config.resolved.batch_size == 128


# --- runtime context -------------------------------------------------------------


def test_runtime_context_sets_the_policy_and_puts_the_callers_back():
    keras.mixed_precision.set_global_policy("float32")
    plan = plan_run(RunConfig(model="vgg11", precision="mixed_bfloat16", jit=False, seed=3))
    with runtime_context(plan) as runtime:
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert runtime.replicas == 1 and runtime.chief and "default strategy" in runtime.description
    assert keras.mixed_precision.global_policy().name == "float32"


def test_environment_is_restored_even_when_the_run_fails(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "before")
    with pytest.raises(RuntimeError):
        with _environment("TF_CONFIG", "during"):
            assert os.environ["TF_CONFIG"] == "during"
            raise RuntimeError("the run failed")
    assert os.environ["TF_CONFIG"] == "before"
    monkeypatch.delenv("TF_CONFIG")
    with _environment("TF_CONFIG", "during"):
        pass
    assert "TF_CONFIG" not in os.environ


# --- the run record ---------------------------------------------------------------


def test_run_record_round_trips_through_config_json(tmp_path):
    record = RunRecord(
        source="synthetic", class_names=("a", "b"), num_classes=2, image_shape=(32, 32, 3),
        mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), preprocessing={"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0],
        "channel_order": "bgr"}, replicas=2, batch_size=64, global_batch=128, auto={"precision": "why"},
    )
    config = RunConfig(model="vgg11", precision="float32", jit=False, resolved=record)
    path = tmp_path / rundir.CONFIG
    rundir.write_json(path, config.to_dict())
    assert json.loads(path.read_text())["resolved"]["class_names"] == ["a", "b"]  # flat JSON, as before
    loaded = RunConfig.load(path)
    assert loaded == config and loaded.resolved == record
    assert record.normalization() == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0), "bgr")
    assert record.image_size == (32, 32)


def test_an_old_config_json_reads_as_a_record_and_writes_back_its_unknown_keys(tmp_path):
    old = RunConfig(model="vgg11", precision="float32", jit=False).to_dict()
    old["resolved"] = OLD_RESOLVED
    config = RunConfig.from_dict(old)
    record = config.resolved
    assert record.class_names[0] == "class_0" and record.batch_size == 128
    assert record.preprocessing is None and record.auto is None and record.transfer is None
    # Without a preprocessing record the normalisation comes from mean and std.
    assert record.normalization() == ((120.0, 121.0, 122.0), (60.0, 61.0, 62.0), "rgb")
    written = config.to_dict()["resolved"]
    assert written["a_key_of_a_future_version"] == {"kept": True}
    assert {k: written[k] for k in OLD_RESOLVED} == OLD_RESOLVED
    assert RunConfig.from_dict(config.to_dict()) == config


def test_a_config_not_yet_run_has_an_empty_record():
    config = RunConfig(model="vgg11")
    assert config.resolved == RunRecord() and config.to_dict()["resolved"] == {}


# --- callbacks ----------------------------------------------------------------


def test_run_callbacks_in_order_with_history_cut_to_the_backup(tmp_path):
    rows = [{"epoch": e, "val_accuracy": v, "loss": 1.0} for e, v in enumerate((0.2, 0.6, 0.4))]
    write_history(tmp_path / rundir.HISTORY, rows)
    config = RunConfig.from_flags("vgg11", schedule="plateau", patience=4, precision="float32", jit=False)
    before, extra = keras.callbacks.Callback(), keras.callbacks.Callback()
    made = cb.run_callbacks(config, tmp_path, 2, checkpoint_model=None, extra=[extra], before=[before])
    kinds = [type(c).__name__ for c in made.callbacks]
    # The backup last of the run's own: a run killed before it redoes the whole epoch.
    assert kinds == [
        "Callback", "EpochTimer", "StopOnNonFinite", "HistoryWriter", "BestCheckpoint", "TensorBoard",
        "ResumableReduceLROnPlateau", "ResumableEarlyStopping", "SafeBackupAndRestore", "Callback", "FaultPoints",
    ]
    assert made.callbacks[0] is before and made.callbacks[-2] is extra and made.stopper is made.callbacks[2]
    writer, best = made.callbacks[3], made.callbacks[4]
    assert [int(r["epoch"]) for r in writer.rows] == [0, 1]  # epoch 2 was not in the backup: redone
    assert best.best == pytest.approx(0.6)


def test_a_resumed_plateau_schedule_holds_the_counters_of_an_unbroken_run():
    """Keras' own ReduceLROnPlateau fed a run's epochs, against the resumable one given those
    epochs as history at every point the run could have been resumed: the same best value,
    wait and cooldown, and so the same next cut."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    settings = dict(monitor="val_accuracy", mode="max", factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    unbroken = keras.callbacks.ReduceLROnPlateau(**settings)
    unbroken.set_model(model)
    unbroken.on_train_begin()
    # Gains, a plateau that cuts (twice), a cooldown, and a floor at min_lr that stops the cuts.
    values = (0.2, 0.5, 0.5, 0.4, 0.45, 0.6, 0.6, 0.55, 0.58, 0.59, 0.59, 0.59, 0.59, 0.7, 0.7, 0.7)
    history, states, cuts = [], [], 0
    for epoch, value in enumerate(values):
        logs = {"val_accuracy": value}
        before = float(model.optimizer.learning_rate)
        unbroken.on_epoch_end(epoch, logs)
        cuts += float(model.optimizer.learning_rate) < before
        history.append({"epoch": epoch, "val_accuracy": value, "learning_rate": logs["learning_rate"]})
        states.append((unbroken.best, unbroken.wait, unbroken.cooldown_counter))
    # Cuts at epochs 3, 7 and 9 (0.1 -> 0.05 -> 0.025 -> 0.02); at 11, 12 and 15 the floor stops them.
    assert cuts == 3 and float(model.optimizer.learning_rate) == pytest.approx(0.02)
    for done in range(1, len(values) + 1):
        resumed = cb.ResumableReduceLROnPlateau(history[:done], **settings)
        resumed.set_model(model)
        resumed.on_train_begin()
        assert (resumed.best, resumed.wait, resumed.cooldown_counter) == states[done - 1], f"resumed after {done}"


def test_run_callbacks_without_plateau_or_patience(tmp_path):
    config = RunConfig.from_flags("vgg11", precision="float32", jit=False)
    kinds = [type(c).__name__ for c in cb.run_callbacks(config, tmp_path, 0, checkpoint_model=None).callbacks]
    assert "ResumableReduceLROnPlateau" not in kinds and "ResumableEarlyStopping" not in kinds and len(kinds) == 7
    # --ema: the average goes in first at an epoch's end, its statistics pass inside the timed epoch.
    config = RunConfig.from_flags("vgg11", precision="float32", jit=False, ema=0.99)
    kinds = [type(c).__name__ for c in cb.run_callbacks(config, tmp_path, 0, checkpoint_model=None).callbacks]
    assert kinds[:3] == ["AveragedWeights", "EpochTimer", "StopOnNonFinite"]
