"""Predictions for many image files: folders read recursively, in batches through tf.data.

`image_files(inputs)` turns files and folders into the list of files (a
folder: every .jpg, .jpeg, .png, .bmp or .gif below it, any case, sorted,
hidden names skipped; a file named explicitly is taken whatever its name).
`predict_files` reads them in tf.data, decoding and resizing in parallel,
and sends whole batches through the predictor, one call per batch rather
than one per image:

    paths -> read + decode (RGB) + resize to the model's input size -> batch -> predictor

Images of another size are resized as the image-folder pipeline does
(bilinear, antialiased, rounded to uint8); the model's own preprocessing
then runs inside it. A file that cannot be read or decoded is dropped from
the stream (`ignore_errors`) and reported with its reason, and the others
go on: the stream keeps the files' order, so the files missing between two
results are the unreadable ones.

`write_csv` writes one row per image: path, then the top-k classes and
their probabilities, best first, atomically (a temporary file, then rename).
"""

import csv
import io
import os
import pathlib

import numpy as np
import tensorflow as tf

from kerascnn.data.image_folder import IMAGE_EXTENSIONS, decode_rgb, resize_uint8
from kerascnn.data.pipeline import without_autotuning
from kerascnn.errors import DataError
from kerascnn.serving.predictor import decode_image_file, top_k
from kerascnn.storage.atomic import write_text


def _is_image_name(name):
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def image_files(inputs):
    """The image files of `inputs` (files and folders), in order; DataError for a missing path or no image at all."""
    files = []
    for item in inputs:
        path = pathlib.Path(item)
        if path.is_dir():
            found = []
            # Symlinked folders are followed, as the training loader follows them (a class folder
            # linked into a data set); each real folder is read once, so a link loop ends.
            seen = set()
            for folder, subfolders, names in os.walk(path, followlinks=True):
                real = os.path.realpath(folder)
                if real in seen:
                    subfolders[:] = []
                    continue
                seen.add(real)
                subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
                found += [os.path.join(folder, n) for n in sorted(names) if _is_image_name(n)]
            files += found
        elif path.is_file():
            files.append(str(path))
        else:
            raise DataError(f"{path} does not exist; pass image files or folders of them")
    if not files:
        raise DataError(
            f"no image files (.jpg, .jpeg, .png, .bmp, .gif) in {', '.join(map(str, inputs))}; "
            "pass image files or folders that hold some"
        )
    return files


def unreadable_reason(path):
    """Why `path` could not be used (it was dropped from the stream)."""
    try:
        decode_image_file(path)
    except DataError as e:
        return str(e)
    return f"cannot decode image {path}"


def predict_files(predictor, files, batch_size=256, k=5, on_unreadable=None, on_batch=None):
    """Yield (path, [(class, probability)] top `k`) for each readable file, in order.

    Args:
        predictor: a `kerascnn.serving.predictor.Predictor`.
        files: image file paths.
        batch_size: images per call of the predictor.
        on_unreadable: called with (path, reason) for each file that cannot be read or decoded.
        on_batch: called with the number of files dealt with so far (read or not) after each batch.
    """
    size = tuple(int(s) for s in predictor.input_size)

    def load(path):
        return path, resize_uint8(decode_rgb(tf.io.read_file(path)), size)

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(files, dtype=str))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    ds = without_autotuning(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))
    position = 0  # the next file the stream should give

    def skip_to(path):
        nonlocal position
        while position < len(files) and files[position] != path:
            if on_unreadable is not None:
                on_unreadable(files[position], unreadable_reason(files[position]))
            position += 1

    for paths, images in ds.as_numpy_iterator():
        probabilities = predictor.probabilities(images)
        for path, p in zip(paths, probabilities):
            path = path.decode()
            skip_to(path)
            position += 1
            yield path, top_k(p, predictor.class_names, k)
        if on_batch is not None:
            on_batch(position)
    skip_to(None)
    if on_batch is not None:
        on_batch(position)


def csv_text(rows, k):
    """CSV of (path, ranked) rows: path, class_1, probability_1, ..., class_k, probability_k."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path"] + [f"{name}_{i}" for i in range(1, k + 1) for name in ("class", "probability")])
    for path, ranked in rows:
        cells = [path]
        for name, probability in ranked:
            cells += [name, f"{probability:.6f}"]
        writer.writerow(cells)
    return buffer.getvalue()


def write_csv(path, rows, k):
    """Write `csv_text(rows, k)` to `path` atomically; return the path."""
    return write_text(path, csv_text(rows, k))
