"""TensorFlow Lite export: `export RUN_DIR --format tflite [--quantize none|float16|int8]`.

Each export is a new version beside the SavedModel versions, in a folder
TF Serving does not read (it only takes integer folders):

    saved_models/<model>/tflite/<version>/
        <model>_<quantize>.tflite   the model
        labels.txt                  one class name per line, in label order
        kerascnn.json               model name, format, quantization, input, preprocessing,
                                    class names, run config, calibration and conversion check

The TFLite model takes float32 RGB pixels on the 0-255 scale, [N, H, W, 3]
at the model's input size (`Preprocessing.resize_to`, else `image_size`;
the batch size is free), and returns logits [N, classes]. Normalisation,
channel order and the centre crop of the `alexnet` and `inception` presets
are inside it; resizing another size is the caller's (the predictor does it
as the image-folder pipeline does: bilinear, antialiased, rounded to uint8).
Logits, not probabilities: an int8 softmax would round small probabilities
to 0 (steps of 1/256), so the predictor takes the softmax in float.

Quantization (the converter's post-training modes):

- none: float32 weights and arithmetic; checked against the Keras model
  within `TOLERANCE` on the probabilities before it is published.
- float16: weights stored as float16 (half the size), computed in float32.
- int8: full integer quantization: int8 weights (per output channel) and
  activations (per tensor), every op in int8 (`TFLITE_BUILTINS_INT8`);
  only the input is quantized and the logits dequantized at the edges. The
  activation ranges are calibrated on `CALIBRATION_IMAGES` images drawn
  (seeded by the run's seed) from the run's own training split, through the
  run's own preprocessing, which the model holds. A model with an op that
  TFLite cannot run in int8 (AlexNet's Local Response Normalization) is
  refused, naming it, rather than left half in float.

A model trained in mixed precision is converted from a float32 copy (the
same weights: mixed-precision variables are float32).
"""

import json
import pathlib
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from kerascnn.config import RunConfig
from kerascnn.data.choose_source import open_source
from kerascnn.data.image_folder import resize_uint8
from kerascnn.data.pipeline import read_guard, split_indices
from kerascnn.errors import ConfigError, DataError
from kerascnn.runtime.quiet import captured_output
from kerascnn.serving import export
from kerascnn.serving.precision import float32_model

QUANTIZATIONS = ("none", "float16", "int8")
SUBDIR = "tflite"
SIGNATURE = "serve"
CALIBRATION_IMAGES = 300
# Largest difference in probability allowed between a float32 conversion and the Keras model.
TOLERANCE = 1e-4
# Ops at the edges of an int8 model: the input's quantization, the logits' dequantization.
_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")


class LiteConversionError(ConfigError):
    """The model cannot be converted with the quantization asked for."""


def require_converter():
    """tf.lite's converter, or ConfigError when this TensorFlow has none."""
    converter = getattr(getattr(tf, "lite", None), "TFLiteConverter", None)
    if converter is None:
        raise ConfigError(
            f"this TensorFlow ({tf.__version__}) has no TensorFlow Lite converter (tf.lite.TFLiteConverter); "
            "install the full `tensorflow` package to export --format tflite"
        )
    return converter


def input_size(preprocessing):
    """(height, width) a TFLite model of `preprocessing` takes: before the centre crop, if there is one."""
    return tuple(int(s) for s in (preprocessing.resize_to or preprocessing.image_size))


def lite_function(model, preprocessing):
    """float32 pixels [N, h, w, 3] at `input_size` -> {"logits": model(preprocessing(pixels))}."""

    def serve(images):
        return {"logits": tf.cast(model(preprocessing(images), training=False), tf.float32)}

    return serve


def _saved_model(model, preprocessing, folder):
    """A SavedModel of `lite_function` with a fixed image size, the converter's input."""
    h, w = input_size(preprocessing)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lite_function(model, preprocessing),
        input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")],
    )
    archive.write_out(str(folder), verbose=False)


def float_ops(content):
    """Names of the ops of a TFLite model that compute in float, besides the quantize/dequantize edges."""
    with warnings.catch_warnings(), captured_output():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_content=content,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 -- the only listing of a model's ops
        if op["op_name"] in _EDGE_OPS:
            continue
        indices = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if any(tensors[i]["dtype"] == np.float32 for i in indices) and op["op_name"] not in found:
            found.append(op["op_name"])
    return found


def convert(model, preprocessing, quantize="none", calibration=None, name="the model"):
    """The bytes of a TFLite model of `model` and `preprocessing`; LiteConversionError when it cannot take `quantize`.

    Args:
        model: a Keras model (normalised images in, logits out).
        preprocessing: the run's `Preprocessing`.
        quantize: none, float16 or int8.
        calibration: uint8 or float images [N, h, w, 3] at `input_size` (int8 only).
        name: the model's name, for messages.
    """
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}. Received: quantize={quantize}")
    converter_class = require_converter()
    model = float32_model(model)
    with tempfile.TemporaryDirectory(prefix="kerascnn-tflite-") as folder:
        _saved_model(model, preprocessing, folder)
        converter = converter_class.from_saved_model(folder, signature_keys=[SIGNATURE])
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            if calibration is None or len(calibration) == 0:
                raise ConfigError("int8 quantization needs calibration images")
            samples = np.asarray(calibration, np.float32)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([samples[i : i + 1]] for i in range(len(samples)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        with captured_output() as said:
            try:
                content = converter.convert()
            except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError...
                error = e
            else:
                error = None
        if error is not None:
            detail = _first_error_line(f"{error}\n{said.text}")
            raise LiteConversionError(
                f"TensorFlow Lite cannot convert {name} with --quantize {quantize}: {detail}; "
                + ("try --quantize float16 or none" if quantize != "none" else "this model has ops TFLite lacks")
            ) from None
    if quantize == "int8":
        left = float_ops(content)
        if left:
            raise LiteConversionError(
                f"{name} cannot be quantized to int8: TensorFlow Lite has no int8 kernel for "
                f"{', '.join(left)}, which would stay in float32; use --quantize float16 or none"
            )
    return content


def _first_error_line(text):
    for line in text.splitlines():
        if "error" in line.lower() and line.strip():
            return " ".join(line.split())[:300]
    return " ".join(text.split())[:300] or "no reason given"


def calibration_images(config, count=CALIBRATION_IMAGES, dataset=None, data_dir=None, size=None):
    """uint8 images [n, h, w, 3]: `count` training images of the run `config`, drawn seeded from its training split.

    The same split `fit` made (its seed, `val_split` and `limit_train`), so
    no validation or test image calibrates the model; `dataset` / `data_dir`
    replace the run's data (moved, or on another machine). Resized to
    `size` when given, as the predictor resizes.
    """
    d = config.data
    if dataset is None and data_dir is None:
        dataset, data_dir = d.dataset, d.data_dir
    source = open_source(dataset, data_dir, d.image_size, skip_bad_images=d.skip_bad_images, log=None)
    train, _ = split_indices(source.info.num_train, d.val_split, d.limit_train, config.seed)
    rng = np.random.default_rng(config.seed)
    chosen = np.sort(rng.choice(train, size=min(int(count), len(train)), replace=False))
    ds = source.train_examples(chosen).map(lambda image, label: image)
    if size is not None:
        ds = ds.map(lambda image: resize_uint8(image, tuple(size)))
    return read_guard(source, lambda: np.concatenate(list(ds.batch(256).as_numpy_iterator()), axis=0))


def _check(content, model, preprocessing, images, quantize):
    """{"images", "max_probability_difference", "top1_agreement"} of the TFLite model against the Keras model.

    Raises ExportError when a float32 conversion differs by more than `TOLERANCE`.
    """
    from kerascnn.serving.interpreter import LiteModel

    lite = LiteModel(content)
    x = np.asarray(images, np.float32)
    got = tf.nn.softmax(lite.logits(x)).numpy()
    want = tf.nn.softmax(lite_function(model, preprocessing)(tf.constant(x))["logits"]).numpy()
    diff = float(np.max(np.abs(got - want)))
    if quantize == "none" and diff > TOLERANCE:
        raise export.ExportError(f"the TFLite model differs from the trained model by {diff:.2e} in probability")
    return {
        "images": int(len(x)),
        "max_probability_difference": diff,
        "top1_agreement": float(np.mean(np.argmax(got, 1) == np.argmax(want, 1))),
    }


def export_tflite(run_dir, export_dir="saved_models", quantize="none", calibration_count=CALIBRATION_IMAGES,
                  dataset=None, data_dir=None, log=None):
    """Convert the best checkpoint of the run in `run_dir`; write, check and publish a version; return the .tflite path."""
    from kerascnn.serving.run_loading import load_run

    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}. Received: quantize={quantize}")
    require_converter()
    config_dict, model, preprocessing = load_run(run_dir)
    config = RunConfig.read(run_dir)
    class_names = config.resolved.class_names
    size = input_size(preprocessing)
    calibration, check_images = None, None
    if quantize == "int8":
        try:
            calibration = calibration_images(config, calibration_count, dataset, data_dir, size)
        except DataError as e:
            raise DataError(
                f"int8 calibration needs training images of the run: {e}; give --data-dir or --dataset"
            ) from None
        check_images = calibration
    else:
        check_images = np.random.default_rng(0).integers(0, 256, (8, *size, 3), dtype=np.uint8)
    if log:
        log(f"converting {config.model} to TensorFlow Lite ({quantize})")
    model = float32_model(model)
    content = convert(model, preprocessing, quantize, calibration, name=config.model)
    check = _check(content, model, preprocessing, check_images, quantize)
    filename = f"{config.model}_{quantize if quantize != 'none' else 'float32'}.tflite"
    manifest = {
        "model": config.model,
        "format": "tflite",
        "file": filename,
        "quantize": quantize,
        "input": {"name": "images", "shape": [-1, *size, 3], "dtype": "float32",
                  "pixels": "RGB, 0-255, resized to the input size (bilinear, antialiased, rounded to uint8)"},
        "output": "logits",
        "preprocessing": preprocessing.to_dict(),
        "class_names": list(class_names),
        "run_config": config_dict,
        "calibration": None if calibration is None else {
            "images": int(len(calibration)), "split": "train", "seed": config.seed,
            "data": dataset or data_dir or config.data.dataset or config.data.data_dir,
        },
        "check": check,
        "tensorflow": tf.__version__,
    }

    def write(folder):
        (folder / filename).write_bytes(content)
        (folder / export.LABELS).write_text("".join(f"{n}\n" for n in class_names))
        (folder / export.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    version = export.publish_version(pathlib.Path(export_dir) / config.model / SUBDIR, write)
    return version / filename
