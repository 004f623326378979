"""TensorFlow Lite export (float32, float16, int8), evaluate and predict through it, and predict at scale."""

import csv
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascnn.cli import serving as serving_cli
from kerascnn.cli.app import main
from kerascnn.config import RunConfig
from kerascnn.data.synthetic import SyntheticSource
from kerascnn.data.pipeline import split_indices
from kerascnn.layers import LocalResponseNormalization
from kerascnn.serving import precision, tflite
from kerascnn.serving.batch_predict import image_files, predict_files
from kerascnn.serving.interpreter import LiteModel
from kerascnn.serving.predictor import load_predictor
from kerascnn.storage import rundir
from kerascnn.training.context import precision_policy
from kerascnn.training.fit import fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite")
    config = RunConfig.from_flags(
        "vgg8", dataset="synthetic", limit_train=128, batch_size=32, epochs=1, run_dir=str(root / "run"),
        model_options={"width_multiplier": 0.25, "batch_norm": True}, precision="float32",
        export=True, export_dir=str(root / "saved_models"),
    )
    return fit(config, log=lambda *_: None, verbose=0)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_tflite_float32_round_trip_matches_the_savedmodel(trained, workdir, capsys):
    assert main(["export", str(trained.run_dir), "--format", "tflite"]) == 0
    printed = capsys.readouterr().out
    lite = workdir / "saved_models" / "vgg8" / "tflite" / "1" / "vgg8_float32.tflite"
    assert "to saved_models/vgg8/tflite/1/vgg8_float32.tflite (" in printed and lite.exists()
    manifest = json.loads((lite.parent / "kerascnn.json").read_text())
    assert manifest["format"] == "tflite" and manifest["quantize"] == "none" and manifest["output"] == "logits"
    assert manifest["input"]["shape"] == [-1, 32, 32, 3] and manifest["check"]["max_probability_difference"] <= 1e-4
    saved = trained.export_dir  # the SavedModel the run exported
    assert (lite.parent / "labels.txt").read_text() == (saved / "labels.txt").read_text()
    assert manifest["preprocessing"] == json.loads((saved / "kerascnn.json").read_text())["preprocessing"]

    images = np.stack([image for image, _ in SyntheticSource().test_examples().take(64).as_numpy_iterator()])
    expected = load_predictor(saved).probabilities(images)
    for path in (lite, lite.parent):  # the file, or its version folder
        np.testing.assert_allclose(load_predictor(path).probabilities(images), expected, atol=1e-4)

    assert main(["evaluate", str(lite), "--limit", "200", "--json"]) == 0
    from_lite = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(saved), "--limit", "200", "--json"]) == 0
    from_saved = json.loads(capsys.readouterr().out)
    assert from_lite["images"] == 200 and from_lite["data"] == "synthetic"
    assert from_lite["accuracy"] == pytest.approx(from_saved["accuracy"], abs=0.01)
    assert from_lite["cross_entropy"] == pytest.approx(from_saved["cross_entropy"], abs=1e-3)


def test_int8_is_calibrated_on_training_images_of_the_run(trained, tmp_path):
    config = RunConfig.read(trained.run_dir)
    calibration = tflite.calibration_images(config, 40)
    train, val = split_indices(5000, config.data.val_split, config.data.limit_train, config.seed)
    source = SyntheticSource()
    pool = {im.tobytes() for im, _ in source.train_examples(train).as_numpy_iterator()}
    held_out = {im.tobytes() for im, _ in source.train_examples(val).as_numpy_iterator()}
    assert calibration.shape == (40, 32, 32, 3) and calibration.dtype == np.uint8
    assert all(im.tobytes() in pool and im.tobytes() not in held_out for im in calibration)
    np.testing.assert_array_equal(calibration, tflite.calibration_images(config, 40))  # seeded by the run

    exports = tmp_path / "exports"
    f32 = tflite.export_tflite(trained.run_dir, exports, "none")
    i8 = tflite.export_tflite(trained.run_dir, exports, "int8", calibration_count=64)
    assert [p.parent.name for p in (f32, i8)] == ["1", "2"] and i8.name == "vgg8_int8.tflite"
    assert i8.stat().st_size < 0.35 * f32.stat().st_size
    content = i8.read_bytes()
    assert tflite.float_ops(content) == []  # every op but the edges runs in int8
    # The input's int8 range is the pixel range of the calibration images (0-255 scale), so the
    # images went in raw and the model's own normalisation was calibrated inside it.
    pixels = tflite.calibration_images(config, 64).astype(np.float32)
    interpreter = LiteModel(content).interpreter
    quantize_op = [op for op in interpreter._get_ops_details() if op["op_name"] == "QUANTIZE"]
    assert quantize_op, "an int8 model quantizes its float input"
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    input_scale = details[quantize_op[0]["outputs"][0]]["quantization"][0]
    assert input_scale == pytest.approx((pixels.max() - min(pixels.min(), 0.0)) / 255.0, rel=0.02)
    manifest = json.loads((i8.parent / "kerascnn.json").read_text())
    assert manifest["calibration"]["images"] == 64 and manifest["calibration"]["split"] == "train"
    assert manifest["check"]["images"] == 64 and manifest["check"]["top1_agreement"] >= 0.5
    probabilities = load_predictor(i8).probabilities(pixels[:8].astype(np.uint8))
    assert probabilities.shape == (8, 10) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_mixed_precision_model_converts_from_a_float32_copy():
    with precision_policy("mixed_bfloat16"):
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(3)])
    assert model.layers[0].compute_dtype == "bfloat16"
    copy = precision.float32_model(model)
    assert all(layer.dtype_policy.name == "float32" for layer in copy.layers)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert copy(x).dtype == "float32"
    np.testing.assert_allclose(copy(x), np.asarray(model(x), np.float32), atol=0.1)  # bfloat16 rounding only
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert precision.float32_model(copy) is copy


def lrn_run(trained, target):
    """A copy of the trained run whose best.keras has a Local Response Normalization layer."""
    shutil.copytree(trained.run_dir, target)
    inputs = keras.Input((32, 32, 3))
    x = LocalResponseNormalization()(keras.layers.Conv2D(8, 3, activation="relu")(inputs))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))).save(target / rundir.BEST)
    return target


def test_a_quantization_the_model_cannot_take_is_refused_in_one_line(trained, workdir, capsys):
    run = lrn_run(trained, workdir / "lrn-run")
    code = main(["export", str(run), "--format", "tflite", "--quantize", "int8", "--calibration-images", "16"])
    err = one_error_line(capsys)
    assert code == 2 and "LOCAL_RESPONSE_NORMALIZATION" in err and "--quantize float16" in err, err
    assert not (workdir / "saved_models").exists()
    assert main(["export", str(run), "--format", "tflite", "--quantize", "float16"]) == 0  # float16 takes it

    assert main(["export", str(run), "--quantize", "int8"]) == 2
    assert "go with --format tflite" in one_error_line(capsys)


def test_a_tflite_file_from_another_tool_is_refused_in_one_line(trained, workdir, capsys):
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    other = workdir / "other.tflite"
    other.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    image = workdir / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert main(["predict", str(other), str(image)]) == 2
    assert "without the kerascnn.json of a kerascnn export" in one_error_line(capsys)
    assert main(["evaluate", str(other)]) == 2
    assert "without the kerascnn.json" in one_error_line(capsys)

    # Garbage under the name an export's kerascnn.json gives.
    lite = tflite.export_tflite(trained.run_dir, workdir / "exports")
    lite.write_bytes(b"TFL3 this is not a flatbuffer")
    assert main(["predict", str(lite), str(image)]) == 2
    assert "is not a TensorFlow Lite model" in one_error_line(capsys)


def write_images(folder):
    """Five readable images (two sizes, nested, mixed case), one corrupt file and one text file."""
    rng = np.random.default_rng(0)
    (folder / "nested" / "deeper").mkdir(parents=True)
    paths = []
    for name, size in (("a.png", 32), ("b.JPG", 48), ("nested/c.png", 32), ("nested/deeper/d.bmp", 20),
                       ("nested/e.png", 32)):
        path = folder / name
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    (folder / "nested" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return paths


def test_predict_a_folder_in_batches_reports_a_corrupt_image_and_writes_the_rest(trained, workdir, capsys, monkeypatch):
    good = write_images(workdir / "pics")
    files = image_files([workdir / "pics"])
    assert sorted(files) == sorted([*good, str(workdir / "pics" / "nested" / "broken.jpg")])

    predictor = load_predictor(trained.export_dir)
    calls = []
    probabilities = predictor.probabilities
    monkeypatch.setattr(predictor, "probabilities", lambda images: calls.append(len(images)) or probabilities(images))
    skipped, seen = [], []
    rows = list(predict_files(predictor, files, batch_size=2, k=3, on_unreadable=lambda p, r: skipped.append((p, r)),
                              on_batch=seen.append))
    assert calls == [2, 2, 1]  # whole batches, not one image at a time
    assert [p for p, _ in rows] == [f for f in files if not f.endswith("broken.jpg")]
    assert [p for p, _ in skipped] == [str(workdir / "pics" / "nested" / "broken.jpg")]
    assert "not a valid JPEG" in skipped[0][1] and seen[-1] == len(files)
    single = dict(rows)[good[0]]  # a 32x32 image: the same as predicting it alone
    alone = probabilities(np.asarray(Image.open(good[0]))[None])[0]
    np.testing.assert_allclose([q for _, q in single], np.sort(alone)[::-1][:3], atol=1e-5)

    monkeypatch.setattr(serving_cli, "PROGRESS_FROM", 3)  # a "long" input
    code = main(["predict", str(trained.export_dir), "pics", "--csv", "out.csv", "--batch-size", "2", "--top-k", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    named = [line for line in err if "broken.jpg" in line]
    assert len(named) == 1 and "skipped: cannot decode image pics/nested/broken.jpg" in named[0]
    assert err[-1].endswith("1 of 6 files could not be read (named above)")
    assert any(line.startswith("predict: 6/6 images") for line in err)
    with open(workdir / "out.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["path", "class_1", "probability_1", "class_2", "probability_2", "class_3", "probability_3"]
    assert len(table) == 5 and {row["path"] for row in table} == {f"pics/{p.split('/pics/')[1]}" for p in good}
    for row in table:
        ranked = [float(row[f"probability_{i}"]) for i in (1, 2, 3)]
        assert ranked == sorted(ranked, reverse=True) and row["class_1"].startswith("class_")


def test_predict_on_an_empty_folder_or_only_unreadable_files_is_one_line(trained, workdir, capsys):
    (workdir / "empty" / "sub").mkdir(parents=True)
    (workdir / "empty" / "sub" / "readme.txt").write_text("no images here")
    assert main(["predict", str(trained.export_dir), "empty"]) == 2
    assert "no image files" in one_error_line(capsys)
    (workdir / "bad.png").write_bytes(b"\x89PNG garbage")
    assert main(["predict", str(trained.export_dir), "bad.png", "--csv", "out.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "bad.png" in err[0] and "none of the 1 image files could be read" in err[1]
    assert not (workdir / "out.csv").exists()
