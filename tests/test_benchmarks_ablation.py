"""benchmarks/ablation.py: every variant a real (tiny) run, a finished one not run again, the table."""

import json
import os
import pathlib
import sys

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)

import ablation  # noqa: E402
import time_to_accuracy  # noqa: E402


def run_child_in_this_process(command):
    """ablation.py's child `time_to_accuracy.py ARGS`, run by that script's own main() here.

    The runs are as real (the same command line, parsed by the script, training and
    testing); only the child process, with its second TensorFlow start-up, is saved.
    """
    assert command[1].endswith("time_to_accuracy.py")
    time_to_accuracy.main(command[2:])


def test_variants_run_once_each_and_the_table_compares_them_with_the_recipe(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ablation, "run_child", run_child_in_this_process)
    out = tmp_path / "ablation"
    # The ablated model itself, thinned (an eighth of the convolutions, fc 16): its
    # graph traces in a fraction of a ResNet's time, and the run is just as real.
    argv = ["alexnet_cifar", "--recipe", "fast", "--epochs", "1", "--out", str(out), "--limit-train", "64",
            "--only", "no_label_smoothing", "--set", "width_multiplier=0.125", "--set", "fc_units=16",
            "--set", "precision=float32", "--set", "batch_size=32",
            "--data-dir", ""]  # the synthetic set, even where $KERASCNN_CIFAR10_DIR is set
    assert ablation.main(argv) == 0
    for variant in ("baseline", "no_label_smoothing"):
        config = json.loads((out / variant / "config.json").read_text())
        assert config["epochs"] == 1 and config["model_options"]["width_multiplier"] == 0.125
        assert config["model_options"]["fc_units"] == 16
    assert json.loads((out / "baseline" / "config.json").read_text())["optim"]["label_smoothing"] == 0.2
    assert json.loads((out / "no_label_smoothing" / "config.json").read_text())["optim"]["label_smoothing"] == 0.0
    report = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in report["rows"]] == ["baseline", "no_label_smoothing"]
    assert all(r["finished"] and 0 <= r["test_accuracy"] <= 1 for r in report["rows"])
    table = (out / "ablation.md").read_text()
    assert "| baseline |" in table and "+0.00 points" in table

    before = (out / "baseline" / "time_to_accuracy.json").stat().st_mtime_ns
    capsys.readouterr()
    assert ablation.main(argv) == 0  # both finished: nothing runs again
    assert "ablation: " not in capsys.readouterr().out
    assert (out / "baseline" / "time_to_accuracy.json").stat().st_mtime_ns == before


def test_every_variant_names_a_run_setting_or_an_option_the_models_take():
    # A misspelt setting would become a builder option and fail hours into a table:
    # check the names here. Builder options must be taken by alexnet_cifar (the
    # ablated model) or, for zero_init_residual and the like, by a ResNet.
    import inspect

    from kerascnn.models import alexnet, resnet

    taken = set(inspect.signature(alexnet.alexnet_cifar).parameters) | set(
        inspect.signature(resnet.resnet20).parameters
    )
    args = ablation.parse_args(["alexnet_cifar", "--epochs", "1", "--out", "unused"])
    for name, (change, pairs) in ablation.VARIANTS.items():
        assert change, name
        settings, options = time_to_accuracy.overrides(ablation.variant_overrides(args, name))
        assert set(options) <= taken, (name, options)
    settings, _ = time_to_accuracy.overrides(ablation.VARIANTS["translate_2"][1])
    assert settings == {"translate": 2}


def test_placeholders_resolve_against_the_recipe_and_its_set_values():
    args = ablation.parse_args(["alexnet_cifar", "--epochs", "1", "--out", "unused"])  # fast: batch 128, logits x0.125
    assert ablation.variant_overrides(args, "half_batch") == ["batch_size=64"]
    assert ablation.variant_overrides(args, "double_logit_scale") == ["logit_scale=0.25"]
    assert ablation.variant_overrides(args, "half_logit_scale") == ["logit_scale=0.0625"]
    args = ablation.parse_args(["alexnet_cifar", "--epochs", "1", "--out", "unused",
                                "--set", "batch_size=512", "--set", "logit_scale=0.5"])
    assert ablation.variant_overrides(args, "half_batch") == ["batch_size=256"]
    assert ablation.variant_overrides(args, "half_logit_scale") == ["logit_scale=0.25"]
    args = ablation.parse_args(["resnet20", "--epochs", "1", "--out", "unused"])  # no logit scale: 1
    assert ablation.variant_overrides(args, "double_logit_scale") == ["logit_scale=2.0"]


def test_learning_rate_and_decay_placeholders_follow_the_run_they_change():
    args = ablation.parse_args(["alexnet_cifar", "--epochs", "1", "--out", "unused"])  # batch 128, peak 0.1, wd 1e-3
    assert ablation.variant_overrides(args, "double_lr") == ["lr=0.2"]
    assert ablation.variant_overrides(args, "half_lr") == ["lr=0.05"]
    assert ablation.variant_overrides(args, "double_weight_decay") == ["weight_decay=0.002"]
    assert ablation.variant_overrides(args, "half_weight_decay") == ["weight_decay=0.0005"]
    # A batch given beside the recipe scales its rate first (Recipe.resolve): 0.1 * 512 / 128.
    args = ablation.parse_args(["alexnet_cifar", "--epochs", "1", "--out", "unused", "--set", "batch_size=512"])
    assert ablation.variant_overrides(args, "double_lr") == ["lr=0.8"]
    assert ablation.variant_overrides(args, "half_batch") == ["batch_size=256"]  # HALF is not part of HALF_LR
    args = ablation.parse_args(["alexnet_cifar", "--epochs", "1", "--out", "unused",
                                "--set", "lr=0.3", "--set", "weight_decay=1e-3"])
    assert ablation.variant_overrides(args, "half_lr") == ["lr=0.15"]
    assert ablation.variant_overrides(args, "half_weight_decay") == ["weight_decay=0.0005"]
    settings, options = time_to_accuracy.overrides(ablation.variant_overrides(args, "double_lr"))
    assert settings == {"lr": 0.6} and not options
    assert ablation.variant_overrides(args, "no_cutout") == ["cutout=0"]  # no placeholder: as written


def _finished_run(run_dir, accuracy, epochs=1):
    run_dir.mkdir(parents=True)
    row = {"epoch": epochs, "test_accuracy": accuracy, "test_flip_accuracy": accuracy + 0.01, "train_seconds": 10.0}
    (run_dir / ablation.RESULT).write_text(json.dumps({"rows": [row]}))


def test_a_second_seed_reuses_seed_0s_runs_and_rows_compare_with_the_baseline_of_the_same_seeds(tmp_path, monkeypatch):
    out = tmp_path / "ablation"
    _finished_run(out / "baseline", 0.80)             # seed 0: the folder a one-seed table wrote
    _finished_run(out / "baseline-seed1", 0.70)
    _finished_run(out / "no_cutout", 0.83)            # two seeds: mean 0.80 against the baseline's 0.75
    _finished_run(out / "no_cutout-seed1", 0.77)
    _finished_run(out / "no_nesterov", 0.79)          # seed 0 only: against the baseline's seed 0
    _finished_run(out / "with_ema-seed2", 0.90)       # no baseline for seed 2: no difference claimed
    started = []
    monkeypatch.setattr(ablation, "run_child", started.append)
    argv = ["alexnet_cifar", "--epochs", "1", "--out", str(out), "--seeds", "0", "1", "2", "--limit-train", "8",
            "--only", "no_cutout", "no_nesterov", "with_ema", "no_onecycle"]
    assert ablation.main(argv) == 0
    ran = {pathlib.Path(command[command.index("--run-dir") + 1]).name for command in started}
    assert ran == {"baseline-seed2", "no_cutout-seed2", "no_nesterov-seed1", "no_nesterov-seed2", "with_ema", "with_ema-seed1",
                   "no_onecycle", "no_onecycle-seed1", "no_onecycle-seed2"}  # nothing finished runs again
    rows = {r["variant"]: r for r in json.loads((out / "ablation.json").read_text())["rows"]}
    assert rows["baseline"]["seeds"] == [0, 1] and abs(rows["baseline"]["difference"]) < 1e-12
    assert rows["no_cutout"]["per_seed"] == [0.83, 0.77] and abs(rows["no_cutout"]["difference"] - 0.05) < 1e-9
    assert rows["no_nesterov"]["seeds"] == [0] and abs(rows["no_nesterov"]["difference"] + 0.01) < 1e-9
    assert rows["with_ema"]["seeds"] == [2] and rows["with_ema"]["difference"] is None
    assert not rows["no_onecycle"]["finished"]
    table = (out / "ablation.md").read_text()
    assert "| no_cutout | no cutout | 0, 1 | 80.00% (83.00%, 77.00%) | 81.00% | +5.00 points |" in table
    assert "| with_ema |" in table and "baseline not run for these seeds" in table


def test_no_data_is_one_line_on_stderr_and_exit_2(tmp_path, capsys, monkeypatch):
    from kerascnn.errors import script_exit_status

    monkeypatch.delenv("KERASCNN_CIFAR10_DIR", raising=False)
    out = tmp_path / "ablation"
    code = script_exit_status(ablation.main, "ablation.py", ["alexnet_cifar", "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("ablation.py: error: give --data-dir (or set KERASCNN_CIFAR10_DIR); "
                                 "--limit-train N runs a smoke test")
    assert not out.exists()
