"""benchmarks/ablation.py: every variant a real (tiny) run, a finished one not run again, the table."""

import json
import os
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
    argv = ["resnet20", "--recipe", "fast", "--epochs", "1", "--out", str(out), "--limit-train", "64",
            "--only", "no_label_smoothing", "--set", "width_multiplier=0.25", "--set", "precision=float32",
            "--set", "batch_size=32", "--data-dir", ""]  # the synthetic set, even where $KERASCNN_CIFAR10_DIR is set
    assert ablation.main(argv) == 0
    for variant in ("baseline", "no_label_smoothing"):
        config = json.loads((out / variant / "config.json").read_text())
        assert config["epochs"] == 1 and config["model_options"]["width_multiplier"] == 0.25
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
    for name, (change, pairs) in ablation.VARIANTS.items():
        assert change, name
        settings, options = time_to_accuracy.overrides([p.replace("HALF", "128") for p in pairs])
        assert set(options) <= taken, (name, options)
    settings, _ = time_to_accuracy.overrides(ablation.VARIANTS["translate_2"][1])
    assert settings == {"translate": 2}
