"""The CIFAR-10 binary version, read without unpickling anything.

Accepted paths:

- the archive `cifar-10-binary.tar.gz` (any gzip/bz2/xz or plain tar whose
  members include the batch files, in any folder inside it); members are read
  straight into memory, nothing is extracted to disk;
- its extracted folder `cifar-10-batches-bin/`;
- a folder that contains `cifar-10-batches-bin/` or `cifar-10-binary.tar.gz`.

Files: `data_batch_1.bin` .. `data_batch_5.bin` (the training set, in that
order), `test_batch.bin` (the test set) and optionally `batches.meta.txt`
(one class name per line; blank lines are skipped). Each `.bin` file is a
sequence of fixed 3073-byte records:

    byte 0          label (0..9)
    bytes 1..1024   red channel,   32x32, row-major
    bytes 1025..2048 green channel, 32x32, row-major
    bytes 2049..3072 blue channel,  32x32, row-major

so a file of N records is `numpy.frombuffer(...).reshape(N, 3073)`; the
pixels reshape to `(N, 3, 32, 32)` and transpose to `(N, 32, 32, 3)`.
"""

import os
import tarfile
import zlib

import numpy as np

from kerascnn.data.contract import SourceInfo
from kerascnn.data.contract import ArraySource
from kerascnn.errors import DataError

RECORD_BYTES = 3073
IMAGE_SHAPE = (32, 32, 3)
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
FOLDER_NAME = "cifar-10-batches-bin"
ARCHIVE_NAME = "cifar-10-binary.tar.gz"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_LAYOUT = (
    f"expected {ARCHIVE_NAME} or a {FOLDER_NAME}/ folder holding "
    f"data_batch_1.bin..data_batch_5.bin and {TEST_FILE}"
)


def resolve(path):
    """Where the batch files are: `("tar", archive)` or `("dir", folder)`, or None.

    Used by `open_source` to auto-detect this layout; does not read any batch.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(path):
        return ("tar", path) if _is_tar(path) and _tar_has_batches(path) else None
    if not os.path.isdir(path):
        return None
    for folder in (path, os.path.join(path, FOLDER_NAME)):
        if any(os.path.isfile(os.path.join(folder, f)) for f in TRAIN_FILES + (TEST_FILE,)):
            return ("dir", folder)
    archive = os.path.join(path, ARCHIVE_NAME)
    if os.path.isfile(archive):
        return ("tar", archive)
    return None


def _is_tar(path):
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _tar_has_batches(path):
    try:
        # Stream the members and stop at the first batch file: a tar has no
        # index, and the batch files come first in the real archive.
        with tarfile.open(path) as tar:
            return any(os.path.basename(m.name) in TRAIN_FILES + (TEST_FILE,) for m in tar)
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        # A damaged archive: let CifarBinarySource report it properly.
        return path.endswith((".tar.gz", ".tgz", ".tar"))


def _read_tar(archive):
    """{basename: bytes} for the batch and meta files in the archive."""
    wanted = set(TRAIN_FILES) | {TEST_FILE, META_FILE}
    found = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                name = os.path.basename(member.name)
                if member.isfile() and name in wanted and name not in found:
                    found[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"cannot read the CIFAR-10 archive {archive}: {e}; download {ARCHIVE_NAME} again"
        ) from None
    return found


def _read_dir(folder):
    found = {}
    for name in TRAIN_FILES + (TEST_FILE, META_FILE):
        file = os.path.join(folder, name)
        if os.path.isfile(file):
            with open(file, "rb") as f:
                found[name] = f.read()
    return found


def parse_records(data, where, num_classes):
    """Images `(N, 32, 32, 3)` uint8 and labels `(N,)` int32 from one `.bin` file's bytes."""
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise DataError(
            f"{where} is {len(data)} bytes, not a whole number of {RECORD_BYTES}-byte "
            "CIFAR-10 records (1 label byte + 3072 pixel bytes): the file is truncated "
            f"or is not CIFAR-10 binary; download {ARCHIVE_NAME} again"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DataError(
            f"{where} record {bad[0]} has label {labels[bad[0]]}, but there are only "
            f"{num_classes} classes: the file is damaged or its {META_FILE} lists too "
            f"few classes; download {ARCHIVE_NAME} again"
        )
    # Planes are stored channel-first (R plane, G plane, B plane): move channels last.
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


class CifarBinarySource(ArraySource):
    """CIFAR-10 from its binary archive or folder (see the module docstring).

    All 60,000 images are read into memory (about 180 MB) when the source is
    made, so a damaged file is reported before training starts.

    Args:
        path: the archive, the `cifar-10-batches-bin/` folder, or a folder
            that contains either.
    """

    def __init__(self, path):
        abs_path = os.path.abspath(os.fspath(path))
        if not os.path.exists(abs_path):
            raise DataError(f"CIFAR-10 binary data not found: {abs_path} does not exist; {_LAYOUT}")
        located = resolve(abs_path)
        if located is None:
            raise DataError(f"{abs_path} is not CIFAR-10 binary data: {_LAYOUT}")
        kind, where = located
        files = _read_tar(where) if kind == "tar" else _read_dir(where)

        missing = [f for f in TRAIN_FILES + (TEST_FILE,) if f not in files]
        if missing:
            raise DataError(
                f"{', '.join(missing)} missing from {where}: {_LAYOUT}; "
                f"download {ARCHIVE_NAME} again"
            )
        class_names = CIFAR10_CLASSES
        if META_FILE in files:
            names = [
                line.strip() for line in files[META_FILE].decode("utf-8", "replace").splitlines()
            ]
            names = tuple(n for n in names if n)
            if names:
                class_names = names

        def name_of(f):
            return f"{where}:{f}" if kind == "tar" else os.path.join(where, f)

        train = [parse_records(files.pop(f), name_of(f), len(class_names)) for f in TRAIN_FILES]
        self._train_images = np.concatenate([t[0] for t in train])
        self._train_labels = np.concatenate([t[1] for t in train])
        del train
        self._test_images, self._test_labels = parse_records(
            files.pop(TEST_FILE), name_of(TEST_FILE), len(class_names)
        )
        self.info = SourceInfo(
            name=f"cifar10-binary:{abs_path}",
            class_names=class_names,
            num_train=len(self._train_labels),
            num_test=len(self._test_labels),
            image_shape=IMAGE_SHAPE,
        )
