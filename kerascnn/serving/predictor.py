"""Predictions from an export or a run directory, on raw uint8 images.

Both `predict` and `evaluate` go through `load_predictor`, so an export is
judged exactly as it will be served: through its SavedModel signature, with
the resizing and normalisation inside the graph.
"""

import dataclasses
import pathlib

import numpy as np
import tensorflow as tf

from kerascnn.serving import export
from kerascnn.storage import rundir
from kerascnn import layers as _layers  # noqa: F401 -- registers the custom layers best.keras may hold (LRN)
from kerascnn.errors import DataError
from kerascnn.record import RunRecord
from kerascnn.serving.run_loading import load_run


@dataclasses.dataclass
class Predictor:
    """`probabilities(images)` for uint8 images [N, H, W, 3] of any size.

    Attributes:
        serve: the function images -> {"probabilities": ...}.
        class_names: label names in label order.
        image_size: (height, width) the model sees.
        data: the DataConfig dict the model was trained with (None if unknown).
        kind: "export" or "run".
    """

    serve: object
    class_names: tuple
    image_size: tuple
    data: dict
    kind: str

    def probabilities(self, images):
        images = tf.convert_to_tensor(images, dtype=tf.uint8)
        if images.shape.rank == 3:
            images = images[tf.newaxis]
        return self.serve(images=images)["probabilities"].numpy()


def load_predictor(path):
    """Load from an export folder (saved_model.pb) or a run directory (best.keras)."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise DataError(f"{path} does not exist; pass an export (saved_models/<model>/<version>) or a run directory")
    if (path / "saved_model.pb").exists():
        if not (path / export.MANIFEST).exists():
            raise DataError(f"{path} is a SavedModel but not a kerascnn export ({export.MANIFEST} is missing)")
        manifest = export.read_manifest(path)
        loaded = tf.saved_model.load(str(path))
        run_config = manifest.get("run_config") or {}
        return Predictor(
            loaded.signatures[manifest["signature"]],
            tuple(manifest["class_names"]),
            tuple(manifest["preprocessing"].image_size),
            run_config.get("data"),
            "export",
        )
    if (path / rundir.CONFIG).exists():
        config, model, preprocessing = load_run(path)
        fn = tf.function(export.serving_function(model, preprocessing))
        return Predictor(
            lambda images: fn(images),
            RunRecord.from_dict(config.get("resolved")).class_names,
            preprocessing.image_size,
            config.get("data"),
            "run",
        )
    raise DataError(
        f"{path} is neither an export (saved_model.pb) nor a run directory (config.json); "
        "pass saved_models/<model>/<version> or runs/<run>"
    )


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
