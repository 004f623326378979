"""Weights files: a `.keras` model with a `kerascnn.json` entry describing it.

A `.keras` file is a zip archive (config.json, metadata.json,
model.weights.h5) that `keras.saving.load_model` reads by name and whose other
entries it ignores. kerascnn adds one entry, `kerascnn.json`, so that a file
written by `import-weights` (or any tool of this project) says how to rebuild
and feed the network it holds:

    {
      "model": "vgg16_bn",                 # registry name
      "model_options": {"batch_norm": true},  # builder keyword arguments
      "num_classes": 1000,
      "image_size": [224, 224],            # the size the weights were trained at
      "normalization": {                   # what `Preprocessing` must apply
        "mean": [123.675, 116.28, 103.53], # 0-255 scale, R, G, B
        "std": [58.395, 57.12, 57.375],
        "channel_order": "rgb"             # or "bgr" (Caffe weights)
      },
      "source": "torchvision vgg16_bn from vgg16_bn.pth (sha256 ...)"
    }

The file is written under a temporary name and renamed, so a reader never
sees half a file.
"""

import io
import json
import os
import pathlib
import tempfile
import zipfile

METADATA_ENTRY = "kerascnn.json"


def save_weights_file(model, path, metadata):
    """Save `model` to `path` (.keras) with `metadata` embedded; atomic. Returns the path."""
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"a weights file ends in .keras. Received: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_ENTRY, json.dumps(metadata, indent=2, sort_keys=True))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_metadata(path):
    """The `kerascnn.json` entry of a `.keras` file as a dict, or None if it has none."""
    from kerascnn.errors import DataError
    from kerascnn.storage import readback

    what = "the weights file is damaged: import the weights again (`import-weights`)"
    data = readback.read_bytes(path, what)  # missing, a folder, unreadable, empty
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if METADATA_ENTRY not in archive.namelist():
                return None
            text = archive.read(METADATA_ENTRY).decode("utf-8")
    except zipfile.BadZipFile:
        return None  # not a .keras archive: its loader says so (`kerascnn.storage.readback.load_keras_model`)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path} is damaged ({METADATA_ENTRY} inside cannot be read: {e}); {what}") from None
    return readback.read_json_text(f"{path} ({METADATA_ENTRY} inside)", text, what)
