"""Predictions from an export, a TensorFlow Lite file or a run directory, on raw uint8 images.

Both `predict` and `evaluate` go through `load_predictor`, so an export is
judged exactly as it will be served: through its SavedModel signature, with
the resizing and normalisation inside the graph, or through
`tf.lite.Interpreter` (`kerascnn.serving.interpreter`).
"""

import dataclasses
import pathlib

import numpy as np
import tensorflow as tf

from kerascnn.serving import export
from kerascnn.storage import readback, rundir
from kerascnn import layers as _layers  # noqa: F401 -- registers the custom layers best.keras may hold (LRN)
from kerascnn.errors import DataError
from kerascnn.record import RunRecord
from kerascnn.serving.interpreter import find_lite_file, lite_serving
from kerascnn.serving.run_loading import load_run


@dataclasses.dataclass
class Predictor:
    """`probabilities(images)` for uint8 images [N, H, W, 3] of any size.

    Attributes:
        serve: the function images -> {"probabilities": ...}.
        class_names: label names in label order.
        image_size: (height, width) the model sees.
        data: the DataConfig dict the model was trained with (None if unknown).
        kind: "export", "tflite" or "run".
        input_size: (height, width) of the images before the model's own
            centre crop (the `alexnet` and `inception` presets), else `image_size`:
            the size to resize images of other sizes to in a batch.
    """

    serve: object
    class_names: tuple
    image_size: tuple
    data: dict
    kind: str
    input_size: tuple = None

    def __post_init__(self):
        if self.input_size is None:
            self.input_size = self.image_size

    def probabilities(self, images):
        images = tf.convert_to_tensor(images, dtype=tf.uint8)
        if images.shape.rank == 3:
            images = images[tf.newaxis]
        return np.asarray(self.serve(images=images)["probabilities"])


def _input_size(preprocessing):
    return tuple(preprocessing.resize_to or preprocessing.image_size)


def load_predictor(path):
    """Load from an export folder (saved_model.pb), a `.tflite` export (the file or its folder) or a run directory."""
    path = pathlib.Path(path)
    lite = find_lite_file(path) if path.exists() else None
    if lite is not None:
        serve, manifest, size = lite_serving(lite)
        return Predictor(
            serve,
            tuple(manifest["class_names"]),
            tuple(manifest["preprocessing"]["image_size"]),
            (manifest.get("run_config") or {}).get("data"),
            "tflite",
            size,
        )
    if path.is_file():
        raise DataError(
            f"{path} is a file, not a model: pass an export (saved_models/<model>/<version>), a .tflite export "
            "or a run directory"
        )
    if not path.is_dir():
        raise DataError(f"{path} does not exist; pass an export (saved_models/<model>/<version>) or a run directory")
    if (path / "saved_model.pb").exists():
        if not (path / export.MANIFEST).exists():
            raise DataError(f"{path} is a SavedModel but not a kerascnn export ({export.MANIFEST} is missing)")
        manifest = export.read_manifest(path)
        run_config = manifest.get("run_config") or {}
        readback.check_keys(path / export.MANIFEST, run_config, optional={"data": (dict, None)},
                            what=export.damaged(path), where="run_config.")
        return Predictor(
            _signature(path, manifest["signature"]),
            tuple(manifest["class_names"]),
            tuple(manifest["preprocessing"].image_size),
            run_config.get("data"),
            "export",
            _input_size(manifest["preprocessing"]),
        )
    if (path / rundir.CONFIG).exists():
        config, model, preprocessing = load_run(path)
        readback.check_keys(path / rundir.CONFIG, config, optional={"data": (dict, None)},
                            what=rundir.damaged(path, rundir.CONFIG))
        fn = tf.function(export.serving_function(model, preprocessing))
        return Predictor(
            lambda images: fn(images),
            RunRecord.from_dict(config.get("resolved")).class_names,
            preprocessing.image_size,
            config.get("data"),
            "run",
            _input_size(preprocessing),
        )
    raise DataError(
        f"{path} is neither an export (saved_model.pb) nor a run directory (config.json); "
        "pass saved_models/<model>/<version> or runs/<run>"
    )


def _signature(path, name):
    """The serving function `name` of the SavedModel in `path`; DataError when the SavedModel cannot be loaded."""
    what = export.damaged(path)
    for file in (path / "saved_model.pb", path / "variables"):
        if not file.exists():
            raise DataError(f"{file} is missing; {what}")
    readback.read_bytes(path / "saved_model.pb", what, size=1)  # a folder, unreadable, empty
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, RuntimeError, KeyError, tf.errors.OpError) as e:
        detail = " ".join(str(e).split())[:160]
        raise DataError(f"the SavedModel in {path} cannot be loaded ({type(e).__name__}: {detail}); {what}") from None
    except Exception as e:  # protobuf's DecodeError of a damaged saved_model.pb
        if type(e).__name__ != "DecodeError":
            raise
        raise DataError(f"{path / 'saved_model.pb'} is damaged (not a SavedModel); {what}") from None
    if name not in loaded.signatures:
        raise DataError(
            f"the SavedModel in {path} has no signature {name!r} (it has {', '.join(loaded.signatures) or 'none'}), "
            f"which {export.MANIFEST} names; {what}"
        )
    return loaded.signatures[name]


def decode_image_file(path):
    """Read an image file as uint8 [H, W, 3]; DataError naming the file when it cannot be read."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e.strerror or e}") from None
    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise DataError(
            f"cannot decode image {path}: it is not a valid JPEG, PNG, BMP or GIF file"
        ) from None


def top_k(probabilities, class_names, k=5):
    """[(class name, probability)] for the k most probable classes, best first."""
    order = np.argsort(-probabilities)[: min(k, len(class_names))]
    return [(class_names[i], float(probabilities[i])) for i in order]
