"""Export: SavedModel on raw uint8 images, versions, verification, atomicity."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.serving import export
from kerascnn.config import RunConfig
from kerascnn.serving.predictor import load_predictor, load_run
from kerascnn.training.fit import fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    config = RunConfig.from_flags(
        "vgg11_bn",
        dataset="synthetic",
        limit_train=128,
        batch_size=32,
        epochs=1,
        run_dir=str(root / "run"),
        export=True,
        export_dir=str(root / "saved_models"),
        model_options={"width_multiplier": 0.25},
        # float32: "identical predictions" below means float32 rounding (1e-5),
        # which mixed bfloat16 (`auto` on machines with bfloat16 units) is not.
        precision="float32",
    )
    return fit(config, log=lambda *_: None, verbose=0)


def _run_parts(run_dir):
    config, model, prep = load_run(run_dir)
    return model, prep, config


def test_fit_export_reload_gives_identical_predictions_on_raw_images(trained):
    path = trained.export_dir
    assert path.name == "1" and path.parent.name == "vgg11_bn"
    model, prep, _ = _run_parts(trained.run_dir)
    images = np.random.default_rng(5).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    expected = tf.nn.softmax(model(prep(images), training=False)).numpy()
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    # The signature computes with vgg11_bn's eight batch norms folded into its convolutions
    # (the comparison above is with the unfolded model); model.keras keeps them.
    manifest = json.loads((path / export.MANIFEST).read_text())
    assert manifest["folded_batch_norm"] == 8
    reloaded = keras.saving.load_model(path / export.KERAS_FILE, compile=False)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in reloaded.layers) == 8
    np.testing.assert_allclose(reloaded(prep(images)).numpy(), model(prep(images)).numpy(), atol=1e-5)
    assert (path / export.LABELS).read_text().splitlines() == [f"class_{i}" for i in range(10)]


def test_serving_resizes_inputs_of_any_size_inside_the_graph(trained):
    predictor = load_predictor(trained.export_dir)
    probs = predictor.probabilities(np.zeros((2, 57, 40, 3), np.uint8))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_new_export_never_overwrites_an_old_one(trained):
    model, prep, config = _run_parts(trained.run_dir)
    root = trained.export_dir.parent.parent
    before = (trained.export_dir / "saved_model.pb").read_bytes()
    second = export.export_model(model, prep, config["resolved"]["class_names"], "vgg11_bn", root, config)
    assert second.name == "2"
    assert (trained.export_dir / "saved_model.pb").read_bytes() == before
    assert sorted(p.name for p in second.parent.iterdir()) == ["1", "2"]  # no temporary folder left


def test_a_failed_verification_leaves_nothing_behind(trained, monkeypatch, tmp_path):
    model, prep, config = _run_parts(trained.run_dir)

    def corrupt(path, model, preprocessing, served=None):
        raise export.ExportError("simulated mismatch")

    monkeypatch.setattr(export, "verify_export", corrupt)
    with pytest.raises(export.ExportError):
        export.export_model(model, prep, ["a"] * 10, "vgg11_bn", tmp_path, config)
    assert list((tmp_path / "vgg11_bn").iterdir()) == []


def test_verification_catches_a_model_that_differs(trained, tmp_path):
    model, prep, config = _run_parts(trained.run_dir)
    path = export.export_model(model, prep, config["resolved"]["class_names"], "m", tmp_path, config)
    other = keras.models.clone_model(model)  # same architecture, fresh weights
    with pytest.raises(export.ExportError, match="differs"):
        export.verify_export(path, other, prep)


def test_a_mixed_precision_model_serves_in_float32_unless_exported_in_bfloat16_or_as_trained(tmp_path):
    from kerascnn.data.preprocessing import Preprocessing
    from kerascnn.training.context import precision_policy

    with precision_policy("mixed_bfloat16"):
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    prep = Preprocessing((8, 8), (120.0, 120.0, 120.0), (60.0, 60.0, 60.0))
    images = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    float32_logits = export.serving_model(model)(prep(images)).numpy()
    paths = {p: export.export_model(model, prep, ["a", "b", "c"], "m", tmp_path, serving_precision=p)
             for p in ("float32", "bfloat16", "trained")}
    for p, path in paths.items():
        manifest = json.loads((path / export.MANIFEST).read_text())
        assert manifest["trained_dtype"] == "bfloat16"
        assert manifest["serving_dtype"] == {"float32": "float32", "bfloat16": "bfloat16", "trained": "bfloat16"}[p]
        assert manifest["folded_batch_norm"] == 0  # no batch norm to fold
        # model.keras keeps the training policy either way (to train on from it).
        reloaded = keras.saving.load_model(path / export.KERAS_FILE, compile=False)
        assert reloaded.layers[0].compute_dtype == "bfloat16"
    serve = {p: tf.saved_model.load(str(path)).signatures["serve"] for p, path in paths.items()}
    probabilities = {p: f(images=tf.constant(images))["probabilities"].numpy() for p, f in serve.items()}
    # float32: exactly the float32 computation of the same weights; bfloat16 and trained: bfloat16's rounding of it.
    np.testing.assert_allclose(probabilities["float32"], tf.nn.softmax(float32_logits).numpy(), atol=1e-5)
    for p in ("bfloat16", "trained"):
        assert not np.allclose(probabilities[p], probabilities["float32"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(probabilities[p], probabilities["float32"], atol=0.05)
    with pytest.raises(ValueError, match="float32, bfloat16, trained"):
        export.export_model(model, prep, ["a", "b", "c"], "m", tmp_path, serving_precision="float16")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2", "3"]


def test_a_bfloat16_export_stores_its_folded_weights_in_bfloat16_and_casts_none_of_them(tmp_path):
    from kerascnn.data.preprocessing import Preprocessing
    from kerascnn.serving.fold_batch_norm import fold_batch_norm
    from kerascnn.serving.precision import bfloat16_model

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6)(x)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    for layer in model.layers:  # batch-norm statistics away from the identity, so that folding changes the weights
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([np.linspace(0.5, 2.0, n), np.linspace(-1, 1, n), np.linspace(-0.5, 0.5, n),
                               np.linspace(0.2, 3.0, n)])
    served = bfloat16_model(model)
    folded, count = fold_batch_norm(model)
    assert count == 2
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in served.layers)
    assert {w.dtype for w in served.weights} == {"bfloat16"}
    assert {layer.dtype_policy.name for layer in served.layers[1:]} == {"bfloat16"}
    # Folded in float32, then each weight rounded once to bfloat16.
    for got, want in zip(served.get_weights(), folded.get_weights()):
        np.testing.assert_array_equal(np.asarray(got, np.float32), tf.cast(tf.cast(want, tf.bfloat16), tf.float32))

    prep = Preprocessing((8, 8), (120.0, 120.0, 120.0), (60.0, 60.0, 60.0))
    path = export.export_model(model, prep, ["a", "b", "c"], "m", tmp_path, serving_precision="bfloat16")
    manifest = json.loads((path / export.MANIFEST).read_text())
    assert (manifest["serving_dtype"], manifest["trained_dtype"], manifest["folded_batch_norm"]) == ("bfloat16", "float32", 2)
    stored = stored_weights(path)
    assert {v.dtype for v in stored.values()} == {np.dtype(tf.bfloat16.as_numpy_dtype)}  # no float32 copy to cast
    # Each weight once; the convolution's filter lives in the graph (constant_filters).
    assert sum(v.size for v in stored.values()) == served.count_params() - int(np.prod(served.layers[1].kernel.shape))
    loaded = tf.saved_model.load(str(path))
    images = np.random.default_rng(2).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    got = loaded.signatures["serve"](images=tf.constant(images))["probabilities"].numpy()
    assert got.dtype == np.float32
    want = tf.nn.softmax(model(prep(images), training=False)).numpy()
    assert not np.allclose(got, want, atol=1e-6, rtol=0)  # bfloat16's rounding, not float32's
    np.testing.assert_allclose(got, want, atol=0.05)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9
    # model.keras keeps the trained float32 layers, batch norms included.
    reloaded = keras.saving.load_model(path / export.KERAS_FILE, compile=False)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in reloaded.layers) == 2


OLD_KEYS = ("source", "class_names", "num_classes", "image_shape", "mean", "std", "num_train", "num_val",
            "num_test", "strategy", "replicas", "batch_size", "global_batch", "lr", "steps_per_epoch", "params")


def _as_old_run(run_dir, target, finished=True):
    """A copy of `run_dir` whose config.json is as fit wrote it before the typed record and preprocessing."""
    import shutil

    shutil.copytree(run_dir, target)
    config = json.loads((target / "config.json").read_text())
    config["resolved"] = {k: config["resolved"][k] for k in OLD_KEYS}
    (target / "config.json").write_text(json.dumps(config))
    if not finished:
        (target / "metrics.json").unlink()
    return target


def test_an_old_run_directory_still_evaluates_exports_and_resumes(trained, tmp_path):
    import kerascnn

    old = _as_old_run(trained.run_dir, tmp_path / "old")
    fresh = kerascnn.evaluate(trained.run_dir, limit=64)
    assert kerascnn.evaluate(old, limit=64)["accuracy"] == pytest.approx(fresh["accuracy"])
    path = kerascnn.export_model(old, export_dir=tmp_path / "exports")  # a run directory, as `export RUN_DIR`
    assert path.name == "1" and load_predictor(path).class_names[0] == "class_0"
    # An interrupted old run (no metrics.json) resumes from its config.json and finishes.
    unfinished = _as_old_run(trained.run_dir, tmp_path / "unfinished", finished=False)
    result = fit(resume_dir=unfinished, log=lambda *_: None, verbose=0)
    assert (unfinished / "metrics.json").exists() and 0.0 <= result.metrics["test_accuracy"] <= 1.0


def test_flip_metrics_average_each_image_with_its_mirror():
    from kerascnn.serving.tta import flip_metrics

    # A "model" whose logits say whether the left half is brighter than the right half.
    inputs = keras.Input((4, 4, 3))
    left = keras.ops.mean(inputs[:, :, :2, :], axis=(1, 2, 3))
    right = keras.ops.mean(inputs[:, :, 2:, :], axis=(1, 2, 3))
    logits = keras.ops.stack([10.0 * (left - right), 10.0 * (right - left)], axis=1)
    model = keras.Model(inputs, logits)
    images = np.zeros((2, 4, 4, 3), np.float32)
    images[:, :, :2, :] = 1.0  # left half bright: class 0 plainly, class 1 when mirrored
    data = tf.data.Dataset.from_tensor_slices((images, np.eye(2, dtype=np.float32)[[0, 0]])).batch(2)
    result = flip_metrics(model, data)
    # p = (softmax([10, -10]) + softmax([-10, 10])) / 2 = [0.5, 0.5]: cross-entropy ln 2.
    assert result["images"] == 2 and result["cross_entropy"] == pytest.approx(np.log(2), rel=1e-4)


def test_shift_moves_the_image_one_pixel_and_reflects_the_uncovered_edge():
    from kerascnn.serving.tta import shift

    x = tf.reshape(tf.range(16), [1, 4, 4, 1])
    down_right = shift(x, 1, 1)[0, :, :, 0].numpy()
    up_left = shift(x, -1, -1)[0, :, :, 0].numpy()
    grid = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(down_right[1:, 1:], grid[:-1, :-1])  # moved, not resampled
    np.testing.assert_array_equal(down_right[0, 1:], grid[1, :-1])  # row 0 is row 1's reflection
    np.testing.assert_array_equal(up_left[:-1, :-1], grid[1:, 1:])
    np.testing.assert_array_equal(up_left[-1, :-1], grid[2, 1:])
    np.testing.assert_array_equal(shift(x, 0, 0).numpy(), x.numpy())
    assert shift(tf.cast(x, tf.uint8), 1, 1).dtype == tf.uint8  # raw serving images shift too


def test_flip_shift_metrics_weigh_the_unshifted_pair_half_and_each_shifted_pair_a_quarter():
    from kerascnn.serving.tta import combine_views, test_time_metrics

    probs = [np.array([[float(i), 0.0]]) for i in range(6)]  # views: x, up-left, down-right, then mirrors
    plain, flip, flip_shift = combine_views(probs)
    assert plain[0, 0] == 0.0 and flip[0, 0] == 1.5  # (x + its mirror) / 2
    assert flip_shift[0, 0] == pytest.approx(0.5 * 1.5 + 0.25 * 2.5 + 0.25 * 3.5)
    # End to end: a model with p(class 0) = sigmoid(top-left pixel), against views cut here with NumPy.
    inputs = keras.Input((4, 4, 1))
    corner = inputs[:, 0, 0, 0]
    model = keras.Model(inputs, keras.ops.stack([corner, keras.ops.zeros_like(corner)], axis=1))
    images = np.random.default_rng(0).normal(size=(3, 4, 4, 1)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 1, 0]]
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")  # edge not repeated
    views = [images, padded[:, 2:6, 2:6], padded[:, 0:4, 0:4]]  # out[i] = x[i + 1], x[i - 1]
    views += [v[:, :, ::-1] for v in views]
    p0 = combine_views([1.0 / (1.0 + np.exp(-v[:, 0, 0, 0])) for v in views])[2]
    expected = -np.mean(np.log(np.where(labels[:, 0] == 1, p0, 1.0 - p0)))
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    result = test_time_metrics(model, data)
    assert result["flip_shift"]["images"] == 3
    assert result["flip_shift"]["cross_entropy"] == pytest.approx(expected, rel=1e-5)


def test_a_run_killed_between_its_export_and_metrics_json_resumes_without_exporting_twice(tmp_path):
    """fit --resume of a run stopped after publishing its export (no metrics.json yet) keeps that export."""

    exports = tmp_path / "saved_models"
    config = RunConfig.from_flags(
        "vgg8", dataset="synthetic", limit_train=64, batch_size=32, epochs=1, run_dir=str(tmp_path / "run"),
        export=True, export_dir=str(exports), model_options={"width_multiplier": 0.125}, serving_precision="bfloat16",
    )
    first = fit(config, log=lambda *_: None, verbose=0)
    assert first.export_dir == exports / "vgg8" / "1"
    manifest = json.loads((first.export_dir / export.MANIFEST).read_text())
    assert manifest["origin"] == "fit" and manifest["run_dir"] == str(first.run_dir.resolve())
    assert manifest["serving_dtype"] == "bfloat16"  # fit --export --serving-precision bfloat16
    (first.run_dir / "metrics.json").unlink()  # as if killed right after the export was renamed into place
    said = []
    again = fit(resume_dir=first.run_dir, log=said.append, verbose=0)
    assert again.export_dir == first.export_dir and sorted(p.name for p in (exports / "vgg8").iterdir()) == ["1"]
    assert any("already exported" in line for line in said) and (first.run_dir / "metrics.json").exists()
    # `export RUN_DIR` is a deliberate new version, and says so in its manifest.
    second = export.export_run(first.run_dir, exports)
    assert second.name == "2" and json.loads((second / export.MANIFEST).read_text())["origin"] == "export"
    assert export.find_export(exports / "vgg8", first.run_dir) == first.export_dir


@pytest.mark.parametrize("name, options", [
    ("alexnet_cifar", {"batch_norm": True}),  # batch norms folded before the rounding, 4,096-wide dense layers
    ("airbench94", {}),  # the frozen whitening convolution
    ("googlenet", {}),  # the custom LRN layer, concatenated inception branches
    ("preact_resnet18", {}),  # additions, batch norms that cannot be folded
])
def test_zoo_models_serve_in_bfloat16_close_to_float32(name, options):
    from kerascnn.models import create_model
    from kerascnn.models.auxiliary import inference_model
    from kerascnn.serving.precision import bfloat16_model

    keras.utils.set_random_seed(0)
    model = inference_model(create_model(name, num_classes=10, input_shape=(32, 32, 3), **options))
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    want = model(x, training=False).numpy()
    served = bfloat16_model(model)
    # Every weight in bfloat16 but the logits head's, which computes in float32 as in mixed_bfloat16 training.
    layers = [layer for layer in served.layers if not isinstance(layer, keras.layers.InputLayer)]
    head = {layer.name for layer in layers if layer.dtype_policy.name == "float32"}
    assert head == {"predictions", "logit_scale"} & {layer.name for layer in layers} and "predictions" in head
    assert {w.dtype for layer in layers if layer.name not in head for w in layer.weights} == {"bfloat16"}
    assert {w.dtype for w in served.get_layer("predictions").weights} == {"float32"}
    got = served(x, training=False)
    assert got.dtype == "float32"
    # bfloat16 keeps 8 bits of mantissa: logits within a few per cent of the largest.
    assert np.abs(np.asarray(got) - want).max() <= 0.05 * np.abs(want).max()


def stored_weights(path):
    """{checkpoint key: array} of the weights a SavedModel's variables/ folder holds."""
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key.endswith("VARIABLE_VALUE")}


def test_a_savedmodel_stores_each_weight_once(tmp_path):
    # Keras' ExportArchive wrote every weight twice when the model was tracked
    # beside the endpoint (keras-team/keras#23553): twice the bytes on disk and in memory.
    from kerascnn.data.preprocessing import Preprocessing

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    prep = Preprocessing((8, 8), (120.0, 120.0, 120.0), (60.0, 60.0, 60.0))
    path = export.export_model(model, prep, ["a", "b", "c"], "m", tmp_path)
    stored = stored_weights(path)
    # Every weight once, but the convolution's filter: the graph carries it as a constant (constant_filters).
    variables = [w for w in model.weights if w is not model.layers[1].kernel]
    assert len(stored) == len(variables)
    assert sum(v.size for v in stored.values()) == sum(int(np.prod(w.shape)) for w in variables)
    assert sorted(tuple(v.shape) for v in stored.values()) == sorted(tuple(w.shape) for w in variables)


def test_evaluating_on_data_whose_classes_differ_by_name_is_refused(trained, tmp_path):
    """Ten classes against ten: the count agrees, but label i would be scored as the model's class i."""
    import kerascnn
    from conftest import make_image_folder
    from kerascnn.errors import DataError

    root = make_image_folder(tmp_path / "other", classes=tuple(f"kind_{i}" for i in range(10)), per_class=1,
                             test_per_class=1)
    with pytest.raises(DataError, match=r"class 0 is 'kind_0' but the model's is 'class_0'"):
        kerascnn.evaluate(trained.run_dir, data_dir=root)
