"""A TensorFlow Lite model at work: `tf.lite.Interpreter` behind `LiteModel` and a `Predictor`.

`evaluate` and `predict` take a `.tflite` file written by `export --format
tflite` (or its version folder): the kerascnn.json beside it gives the class
names and the input size; a `.tflite` file without it (from another tool),
or one that does not match it, is refused in one line.
"""

import os
import pathlib
import warnings

import numpy as np
import tensorflow as tf

from kerascnn.errors import DataError
from kerascnn.runtime.quiet import captured_output
from kerascnn.serving import export
from kerascnn.serving.run_loading import preprocessing_from
from kerascnn.storage import readback

SUFFIX = ".tflite"
_EXPORT_HINT = "export one with `kerascnn export RUN_DIR --format tflite`"


class LiteModel:
    """float32 pixels [N, h, w, 3] -> logits, through `tf.lite.Interpreter`, any N.

    Args:
        content: the model's bytes (or give `path`).
        path: a `.tflite` file.
        num_threads: the interpreter's threads (None: every core this process
            may use, as TensorFlow's own thread pools do for the SavedModel).
    """

    def __init__(self, content=None, path=None, num_threads=None):
        where = path or "the model"
        if num_threads is None:
            num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        try:
            # tf.lite.Interpreter warns that it moves to ai_edge_litert; its
            # delegate announces itself on stderr: neither is for the user.
            with warnings.catch_warnings(), captured_output():
                warnings.simplefilter("ignore")
                self.interpreter = tf.lite.Interpreter(
                    model_content=content, model_path=None if path is None else str(path), num_threads=num_threads
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            reason = " ".join(str(e).split())[:200]
            raise DataError(f"{where} is not a TensorFlow Lite model TensorFlow can read ({reason}); {_EXPORT_HINT}") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise DataError(f"{where} takes {len(inputs)} inputs and gives {len(outputs)} outputs, not one image batch "
                            f"and one score per class; {_EXPORT_HINT}")
        self.input, self.output = inputs[0], outputs[0]
        signature = [int(d) for d in self.input["shape_signature"]]
        if len(signature) != 4 or signature[3] != 3 or self.input["dtype"] != np.float32:
            raise DataError(
                f"{where} takes {self.input['dtype'].__name__} {signature}, not float32 images [N, H, W, 3]; "
                f"{_EXPORT_HINT}"
            )
        self.signature = signature
        self._batch = int(self.input["shape"][0])

    @property
    def input_size(self):
        return tuple(self.signature[1:3])

    def logits(self, images, batch_size=256):
        """Logits [N, classes] of float32 images [N, h, w, 3] at `input_size`, in batches of `batch_size`."""
        images = np.asarray(images, np.float32)
        if self.signature[0] != -1:  # a fixed batch (a model from elsewhere): chunks of exactly that
            batch_size = self.signature[0]
        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            n = len(chunk)
            if self.signature[0] != -1 and n < batch_size:
                chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]), np.float32)])
            if chunk.shape[0] != self._batch:
                self.interpreter.resize_tensor_input(self.input["index"], list(chunk.shape))
                self.interpreter.allocate_tensors()
                self._batch = chunk.shape[0]
            self.interpreter.set_tensor(self.input["index"], chunk)
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.output["index"])[:n].copy())
        return np.concatenate(out) if out else np.zeros((0, int(self.output["shape"][-1])), np.float32)


def resize_batch(images, size):
    """uint8 [N, H, W, 3] at `size` (height, width): bilinear, antialiased, rounded (as the image-folder pipeline)."""
    images = tf.convert_to_tensor(images)
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    x = tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def find_lite_file(path):
    """The `.tflite` file of `path` (the file itself, or the one in an export version folder); None if neither."""
    path = pathlib.Path(path)
    if path.is_file() and path.suffix == SUFFIX:
        return path
    if path.is_dir():
        files = sorted(path.glob(f"*{SUFFIX}"))
        if len(files) == 1:
            return files[0]
        if len(files) > 1:
            raise DataError(f"{path} holds {len(files)} .tflite files; pass the one to use")
    return None


def load_lite(path, num_threads=None):
    """(LiteModel, manifest) of a `.tflite` export; DataError for a file from elsewhere or one its manifest does not describe."""
    path = pathlib.Path(path)
    manifest_path = path.parent / export.MANIFEST
    if not manifest_path.is_file():
        raise DataError(
            f"{path} is a TensorFlow Lite file without the {export.MANIFEST} of a kerascnn export beside it "
            f"(class names, input size); {_EXPORT_HINT}"
        )
    what = export.damaged(path.parent)
    manifest = readback.read_json(manifest_path, what, expect=None)  # a folder, unreadable, empty, not JSON
    if not isinstance(manifest, dict) or manifest.get("format") != "tflite" or manifest.get("file") != path.name:
        raise DataError(
            f"{path} is not the TensorFlow Lite model that {manifest_path} describes; {_EXPORT_HINT}"
        )
    readback.check_keys(manifest_path, manifest, {"input": dict, "class_names": list, "preprocessing": dict}, what,
                        optional={"run_config": (dict, None)})
    readback.check_keys(manifest_path, manifest["input"], {"shape": list}, what, where="input.")
    shape = manifest["input"]["shape"]
    if len(shape) != 4 or not all(readback.is_json(v, int) for v in shape[1:3]):
        raise DataError(f"{manifest_path} has no input size (\"input.shape\"); {what}")
    preprocessing_from(manifest["preprocessing"], manifest_path, what, "preprocessing")
    export.check_labels(path.parent, manifest, what)
    model = LiteModel(path=path, num_threads=num_threads)
    size = tuple(manifest["input"]["shape"][1:3])
    classes = int(model.output["shape"][-1])
    if model.input_size != size or classes != len(manifest["class_names"]):
        raise DataError(
            f"{path} takes {model.input_size} images and gives {classes} scores, but {manifest_path} says "
            f"{size} and {len(manifest['class_names'])} classes; {_EXPORT_HINT}"
        )
    return model, manifest


def lite_serving(path, num_threads=None):
    """(serve, manifest, input size) of a `.tflite` export: `serve(images=uint8 [N, H, W, 3])` ->
    {"probabilities": softmax of the logits}, images of another size resized first (`resize_batch`)."""
    model, manifest = load_lite(path, num_threads)
    size = model.input_size

    def serve(images):
        x = tf.cast(resize_batch(images, size), tf.float32).numpy()
        return {"probabilities": tf.nn.softmax(model.logits(x), axis=-1)}

    return serve, manifest, size
