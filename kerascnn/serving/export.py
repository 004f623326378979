"""Export for serving: saved_models/<model>/<version>/.

Each version folder holds
    saved_model.pb, variables/   a TensorFlow SavedModel; its `serve` signature
                                 (also `serving_default`) takes raw uint8 images
                                 [N, H, W, 3] of any size and returns
                                 {"probabilities": [N, num_classes]}, with the
                                 run's resizing and normalisation in the graph,
                                 computed in float32 unless exported with
                                 serving_precision="bfloat16" or "trained"
                                 (`precision`); a float32 or bfloat16 signature
                                 has its batch norms folded into the layers
                                 before them (`fold_batch_norm`)
    model.keras                  the Keras model as trained (normalised inputs
                                 -> logits, its own dtype policy)
    labels.txt                   one class name per line, in label order
    kerascnn.json                model name, preprocessing, class names, run config,
                                 the serving dtype and how many batch norms were folded,
                                 the run directory it came from and what wrote it
                                 ("fit" for `fit --export`, "export" for `export RUN_DIR`)

Versions are integers, as TF Serving expects; a new export never touches an
old one. The version is written to a temporary folder, reloaded and checked
against the in-memory model, and only then renamed into place, so a reader
never sees a half-written version.
"""

import json
import os
import pathlib
import shutil

import keras
import numpy as np
import tensorflow as tf

from kerascnn.record import RunRecord
from kerascnn import faults
from kerascnn.serving.constant_filters import filter_values, filters_as_constants
from kerascnn.serving.fold_batch_norm import batch_norm_count, fold_batch_norm
from kerascnn.serving.precision import DEFAULT_SERVING_PRECISION, compute_dtype, serving_model
from kerascnn.storage.atomic import staging_folder

MANIFEST = "kerascnn.json"
LABELS = "labels.txt"
KERAS_FILE = "model.keras"
SIGNATURE = "serve"
# Largest allowed difference between reloaded and in-memory probabilities.
TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The written export does not reproduce the in-memory model."""


def serving_function(model, preprocessing, filters=None):
    """uint8 images [N, H, W, 3] -> {"probabilities": softmax(model(preprocess(images)))}.

    `filters` (`constant_filters.filter_values(model)`): the convolutions read
    these as graph constants when the function is traced (faster calls; the
    same function).
    """

    def serve(images):
        with filters_as_constants(model, filters or {}):
            logits = model(preprocessing(images), training=False)
        return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    return serve


def next_version(model_root):
    """1 + the largest integer version under `model_root` (1 when there is none)."""
    versions = [int(p.name) for p in pathlib.Path(model_root).glob("*") if p.name.isdigit()]
    return max(versions, default=0) + 1


def _check_images(preprocessing, seed=0):
    """Fixed test images: some at the model's size and some that need resizing."""
    rng = np.random.default_rng(seed)
    h, w = preprocessing.image_size
    return [
        rng.integers(0, 256, size=(4, h, w, 3), dtype=np.uint8),
        rng.integers(0, 256, size=(2, h + 5, w + 3, 3), dtype=np.uint8),
    ]


def verify_export(path, model, preprocessing, served=None):
    """Reload both artifacts and compare with the in-memory models; raise ExportError.

    The SavedModel's signature is compared with `served` (the model it
    computes with, `precision.serving_model`; default `model`), model.keras
    with `model`.
    """
    serve = tf.function(serving_function(model if served is None else served, preprocessing))
    reloaded = tf.saved_model.load(str(path))
    for images in _check_images(preprocessing):
        expected = serve(tf.constant(images))["probabilities"].numpy()
        got = reloaded.signatures[SIGNATURE](images=tf.constant(images))["probabilities"].numpy()
        diff = float(np.max(np.abs(expected - got)))
        if diff > TOLERANCE:
            raise ExportError(f"the SavedModel in {path} differs from the trained model by {diff:.2e}")
    keras_model = keras.saving.load_model(path / KERAS_FILE, compile=False)
    x = preprocessing(_check_images(preprocessing)[0])
    diff = float(np.max(np.abs(keras_model(x, training=False).numpy() - model(x, training=False).numpy())))
    if diff > TOLERANCE:
        raise ExportError(f"{KERAS_FILE} in {path} differs from the trained model by {diff:.2e}")


def _write(path, model, served, preprocessing, class_names, model_name, run_config, source):
    # A float32 signature computes with batch norm folded into the layers
    # before it (kerascnn.serving.fold_batch_norm); verify_export compares it
    # with the unfolded `served`. A bfloat16 one comes folded (in float32,
    # then rounded: `precision.bfloat16_model`); one in the trained mixed
    # precision would cast the folded weights on every call, so it keeps its layers.
    folded = fold_batch_norm(served)[0] if compute_dtype(served) == "float32" else served
    count = batch_norm_count(model) - batch_norm_count(folded)
    archive = keras.export.ExportArchive()
    # No `archive.track(folded)`: the endpoint tracks the variables it uses,
    # and tracking the model as well wrote every weight twice (the Keras
    # wrappers and the tf.Variables they hold: keras-team/keras#23553), which
    # doubled the export on disk and in the memory of whatever loads it.
    archive.add_endpoint(
        name=SIGNATURE,
        fn=serving_function(folded, preprocessing, filter_values(folded)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.write_out(str(path), verbose=False)
    model.save(path / KERAS_FILE)
    (path / LABELS).write_text("".join(f"{name}\n" for name in class_names))
    manifest = {
        "model": model_name,
        "preprocessing": preprocessing.to_dict(),
        "class_names": list(class_names),
        "signature": SIGNATURE,
        "serving_dtype": compute_dtype(served),
        "folded_batch_norm": count,
        "trained_dtype": compute_dtype(model),
        "run_config": run_config,
        **source,
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def export_model(model, preprocessing=None, class_names=None, model_name=None, export_dir="saved_models",
                 run_config=None, serving_precision=DEFAULT_SERVING_PRECISION, run_dir=None, origin="export"):
    """Write, verify and publish a new version; return its folder.

    `model` is a Keras model (normalised images in, logits out) with its
    `preprocessing`, `class_names` and `model_name`; or a run directory
    (its best checkpoint, with everything else read from its config.json),
    as `python main.py export RUN_DIR` does. `serving_precision`: the
    serving signature computes in "float32" (the default: a float32 copy of
    a mixed-precision model, the same weights), "bfloat16" (the weights
    stored in bfloat16: fastest on CPUs with AMX or AVX512-BF16) or as
    "trained" (`kerascnn.serving.precision`). `run_dir` and `origin` ("fit" or
    "export") go into kerascnn.json, so that `fit --resume` finds the export
    it already published (`find_export`).
    """
    if not isinstance(model, keras.Model):
        return export_run(model, export_dir, serving_precision)
    source = {"origin": origin, **({"run_dir": str(pathlib.Path(run_dir).resolve())} if run_dir else {})}
    if preprocessing is None or class_names is None or model_name is None:
        raise TypeError("export_model(keras_model, ...) needs preprocessing, class_names and model_name")
    served = serving_model(model, serving_precision)

    def write(tmp):
        _write(tmp, model, served, preprocessing, class_names, model_name, run_config, source)
        faults.point("export.write")
        verify_export(tmp, model, preprocessing, served)

    return publish_version(pathlib.Path(export_dir) / model_name, write)


def publish_version(root, write):
    """Run `write(folder)` on a staging folder under `root`, then rename it to the next version; return it.

    A failure (or Ctrl-C) removes the staging folder, so `root` only ever
    holds complete versions; a process killed while writing leaves its
    staging folder, which the next export under `root` removes
    (`kerascnn.storage.atomic.staging_folder`).
    """
    root = pathlib.Path(root)
    tmp = staging_folder(root / "version")
    try:
        write(tmp)
        faults.point("export.version")
        while True:
            final = root / str(next_version(root))
            try:
                os.rename(tmp, final)  # atomic; fails if another export took this version
                return final
            except OSError:
                if not final.exists():
                    raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- reading back ----------------------------------------------------------------


def export_run(run_dir, export_dir="saved_models", serving_precision=DEFAULT_SERVING_PRECISION):
    """Export the best checkpoint of the run in `run_dir`; return the version folder."""
    from kerascnn.serving.run_loading import load_run

    config, model, preprocessing = load_run(run_dir)
    class_names = RunRecord.from_dict(config.get("resolved")).class_names
    return export_model(model, preprocessing, class_names, config["model"], export_dir, config, serving_precision,
                        run_dir=run_dir, origin="export")


def find_export(model_root, run_dir, origin="fit"):
    """The newest version under `model_root` that `origin` wrote from the run in `run_dir`, or None.

    A run killed after its export was published but before metrics.json
    (which marks it finished) is tested and published again by
    `fit --resume`; this finds the export it already made, so the resumed
    run does not publish the same model as a second version. Versions
    whose kerascnn.json cannot be read are skipped: they are not this run's.
    """
    root, wanted = pathlib.Path(model_root), str(pathlib.Path(run_dir).resolve())
    versions = sorted((p for p in root.glob("*") if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
    for version in versions:
        try:
            manifest = json.loads((version / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("origin") == origin and manifest.get("run_dir") == wanted:
            return version
    return None


def damaged(path):
    """What to say after a damaged file of the export `path`: what to do."""
    return f"the export {path} is damaged: export the run again (`kerascnn export RUN_DIR`)"


def read_manifest(path, serving=True):
    """kerascnn.json of an export, its "preprocessing" as a `Preprocessing`; DataError naming a damaged file.

    With `serving` (predict, evaluate) the manifest must also name the
    classes and the signature, and labels.txt must list the same classes.
    """
    from kerascnn.serving.run_loading import preprocessing_from
    from kerascnn.storage import readback

    path = pathlib.Path(path)
    file, what = path / MANIFEST, damaged(path)
    required = {"preprocessing": dict}
    if serving:
        required.update({"model": str, "class_names": list, "signature": str})
    manifest = readback.read_json(file, what, required=required, optional={"model": str, "run_config": (dict, None)})
    manifest["preprocessing"] = preprocessing_from(manifest["preprocessing"], file, what, "preprocessing")
    if serving:
        check_labels(path, manifest, what)
    return manifest


def check_labels(path, manifest, what):
    """DataError unless the manifest's class names are strings and labels.txt lists them, one a line."""
    from kerascnn.errors import DataError
    from kerascnn.storage import readback

    names = manifest["class_names"]
    if not names or not all(isinstance(n, str) and n and "\n" not in n for n in names):
        raise DataError(f"{path / MANIFEST} has no list of class names (\"class_names\"); {what}")
    labels = readback.read_lines(path / LABELS, what)
    if labels != names:
        raise DataError(
            f"{path / LABELS} lists {len(labels)} classes that are not the {len(names)} of {MANIFEST}; {what}"
        )
