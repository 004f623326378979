"""Run reports: confusion matrix from fit, visualize, compare, and the CLI's bad-input lines."""

import csv
import json

import keras
import numpy as np
import pytest
from PIL import Image

from kerascnn.storage import rundir
from kerascnn.analysis.compare import compare_runs
from kerascnn.analysis.confusion import confusion_matrix, write_class_report
from kerascnn.cli.app import main
from kerascnn.config import RunConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One real, tiny training run (1 epoch of a thin VGG on 128 synthetic images)."""
    from kerascnn.training.fit import fit

    root = tmp_path_factory.mktemp("runs")
    config = RunConfig.from_flags(
        "vgg11", dataset="synthetic", limit_train=128, batch_size=32, epochs=1, schedule="constant",
        run_dir=str(root / "vgg11-run"), model_options={"width_multiplier": 0.25},
    )
    result = fit(config, log=lambda *_: None, verbose=0)
    keras.backend.clear_session()
    return result.run_dir


def png(path):
    assert path.exists() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        assert image.format == "PNG"
    return path


def test_fit_writes_the_confusion_matrix_and_per_class_accuracy(run_dir):
    png(run_dir / rundir.CONFUSION_PNG)
    with open(run_dir / rundir.PER_CLASS_CSV) as f:
        rows = list(csv.DictReader(f))
    config = json.loads((run_dir / rundir.CONFIG).read_text())
    metrics = json.loads((run_dir / rundir.METRICS).read_text())
    assert [r["class"] for r in rows] == config["resolved"]["class_names"]
    images = sum(int(r["images"]) for r in rows)
    assert images == config["resolved"]["num_test"]
    # The matrix' trace over its sum is the test accuracy `evaluate` measured.
    assert sum(int(r["correct"]) for r in rows) / images == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    with open(run_dir / rundir.CONFUSION_CSV) as f:
        matrix = list(csv.reader(f))
    assert len(matrix) == 1 + len(rows) and len(matrix[0]) == 1 + len(rows)


def test_confusion_matrix_counts_true_rows_and_predicted_columns(tmp_path):
    # A "model" that returns its input as logits: predictions are known in advance.
    x = keras.Input((3,))
    identity = keras.Model(x, keras.layers.Identity()(x))
    logits = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 2, 1]]
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((logits, labels)).batch(2)
    counts = confusion_matrix(identity, data, 3)
    assert counts.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    report = write_class_report(identity, data, ["a", "b", "c"], tmp_path)
    assert report["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 0.5}
    png(tmp_path / rundir.CONFUSION_PNG)


def test_visualize_a_run_dir_writes_filters_and_one_feature_map_per_block(run_dir, tmp_path):
    image = tmp_path / "cat.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "viz"
    assert main(["visualize", str(run_dir), "--image", str(image), "--out", str(out)]) == 0
    png(out / "filters.png")
    maps = sorted(p.name for p in out.glob("features_*.png"))
    # vgg11 at 32x32: the last conv of each of the 5 stages, then the last pooling.
    assert maps == [
        "features_01_block1_conv1.png", "features_02_block2_conv1.png", "features_03_block3_conv2.png",
        "features_04_block4_conv2.png", "features_05_block5_conv2.png", "features_06_block5_pool.png",
    ]
    for name in maps:
        png(out / name)


def test_visualize_a_fresh_model_says_its_weights_are_random(tmp_path, capsys):
    assert main(["visualize", "alexnet_cifar", "--out", str(tmp_path / "v")]) == 0
    assert "random weights" in capsys.readouterr().out
    png(tmp_path / "v" / "filters.png")


def fake_run(root, name, model, test_accuracy, seconds):
    """A finished run directory written by hand (as fit leaves it)."""
    path = root / name
    path.mkdir()
    config = {
        "model": model,
        "model_options": {"width_multiplier": 0.25},
        "resolved": {"num_classes": 10, "image_shape": [32, 32, 3], "class_names": [str(i) for i in range(10)]},
    }
    metrics = {
        "test_accuracy": test_accuracy, "best_val_accuracy": test_accuracy + 0.01, "params": 12345,
        "seconds_per_epoch": seconds, "epochs_run": 2, "overfitting_gap": 0.05,
    }
    rundir.write_json(path / rundir.CONFIG, config)
    rundir.write_json(path / rundir.METRICS, metrics)
    (path / rundir.HISTORY).write_text(
        "epoch,accuracy,val_accuracy,val_cross_entropy\n0,0.2,0.25,2.1\n1,0.4,0.45,1.7\n"
    )
    return path


def test_compare_writes_the_table_curves_and_bar_charts(run_dir, tmp_path):
    other = fake_run(tmp_path, "alexnet_cifar-fake", "alexnet_cifar", 0.5, 3.0)
    out = tmp_path / "report"
    rows, _ = compare_runs([run_dir, other], out)
    # MACs of the thin alexnet_cifar at 32x32, by hand: widths 16-32-64-64-64 (0.25 x), 3x3 convs,
    # 2x2 pooling after conv1, conv2 and conv5; FC 4096-4096-10 on a 4x4x64 map.
    convs = [(32, 3, 16), (16, 16, 32), (8, 32, 64), (8, 64, 64), (8, 64, 64)]
    macs = sum(n * n * c_out * 9 * c_in for n, c_in, c_out in convs) + 4 * 4 * 64 * 4096 + 4096 * 4096 + 4096 * 10
    assert rows[1]["macs"] == macs
    metrics = json.loads((run_dir / rundir.METRICS).read_text())
    assert rows[0]["params"] == metrics["params"] and rows[0]["test_accuracy"] == metrics["test_accuracy"]
    with open(out / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == [
        "run", "model", "params", "macs", "test_accuracy", "best_val_accuracy",
        "seconds_per_epoch", "epochs", "overfitting_gap",
    ]
    assert table[1]["model"] == "alexnet_cifar" and float(table[1]["seconds_per_epoch"]) == 3.0
    assert "| alexnet_cifar-fake | alexnet_cifar |" in (out / "comparison.md").read_text()
    png(out / "curves.png")
    png(out / "bars.png")


def test_a_run_counts_its_macs_once_and_compare_reads_them_without_rebuilding(run_dir, tmp_path, monkeypatch):
    from kerascnn.analysis import compare

    metrics = json.loads((run_dir / rundir.METRICS).read_text())
    rebuilt = compare.run_macs(rundir.read_config(run_dir))  # the count from the network rebuilt
    assert metrics["macs"] == rebuilt and rebuilt > 0

    def no_rebuild(config):
        raise AssertionError("compare rebuilt a model whose run recorded its MACs")

    monkeypatch.setattr(compare, "rebuild_model", no_rebuild)
    rows, _ = compare_runs([run_dir], tmp_path / "report")
    assert rows[0]["macs"] == rebuilt


# --- bad input: one line on stderr, exit status 2 ---------------------------


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_unknown_model_is_one_line(capsys):
    err = one_line_error(capsys, ["summary", "vgg17"])
    assert "unknown model 'vgg17'" in err and "vgg16" in err
    assert "unknown model" in one_line_error(capsys, ["receptive-field", "vgg16", "resnet7"])


def test_a_shape_the_model_cannot_take_names_the_layer_and_why(capsys):
    err = one_line_error(capsys, ["summary", "alexnet_v2", "--input-shape", "5,5,3"])
    assert "alexnet_v2 cannot take input shape 5x5x3" in err
    assert "layer conv1 (Conv2D, 11x11/4 valid, 64)" in err and "zero or negative" in err


def test_a_path_that_is_not_a_run_directory(capsys, tmp_path):
    err = one_line_error(capsys, ["compare", str(tmp_path), "--out", str(tmp_path / "r")])
    assert "is not a complete run directory" in err
    assert "does not exist" in one_line_error(capsys, ["compare", str(tmp_path / "nope")])
    assert "neither a run directory" in one_line_error(capsys, ["visualize", str(tmp_path)])
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_bad_flags_and_images(capsys, tmp_path):
    assert "H,W,C" in one_line_error(capsys, ["summary", "vgg16", "--input-shape", "a,b"])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert "cannot decode image" in one_line_error(capsys, ["visualize", "vgg8", "--image", str(bad)])


def test_visualize_an_export_uses_its_model_and_preprocessing(tmp_path):
    from kerascnn.serving import export
    from kerascnn.analysis.visualize import load_for_analysis, visualize

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv2")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny")
    folder = tmp_path / "saved_models" / "tiny" / "1"
    folder.mkdir(parents=True)
    model.save(folder / export.KERAS_FILE)
    manifest = {"model": "tiny", "preprocessing": {"image_size": [16, 16], "mean": [1, 2, 3], "std": [4, 5, 6]}}
    (folder / export.MANIFEST).write_text(json.dumps(manifest))
    loaded = load_for_analysis(str(folder))
    assert loaded.source == "export" and loaded.preprocessing.mean == (1, 2, 3)
    written = visualize(loaded, tmp_path / "out", np.zeros((20, 20, 3), np.uint8))
    assert [p.name for p in written] == ["filters.png", "features_01_conv1.png", "features_02_conv2.png"]
    for path in written:
        png(path)


def test_summary_command_prints_the_table_and_nothing_else(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(repo / "main.py"), "summary", "alexnet_v2", "--input-shape", "227,227,3",
         "--num-classes", "1000"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "| conv1 | Conv2D | 11x11/4 valid, 64 | 56x56x64 | 784 | 23,296 | 72,855,552 | 145,711,104 |" in out.stdout
    assert "| **total** |  |  |  | 3,532.34 | 61,100,840 | 716,767,232 | 1,433,534,464 |" in out.stdout


def test_summary_of_a_run_dir_uses_its_model_input_and_dtype(run_dir, capsys):
    assert main(["summary", str(run_dir), "--format", "json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    metrics = json.loads((run_dir / rundir.METRICS).read_text())
    assert profile["model"] == "vgg11" and profile["input_shape"] == [32, 32, 3]
    precision = json.loads((run_dir / rundir.CONFIG).read_text())["precision"]  # `auto` resolved for this machine
    dtype = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(precision, "float32")
    assert profile["dtype"] == dtype and profile["total"]["params"] == metrics["params"]
