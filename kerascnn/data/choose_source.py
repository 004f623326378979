"""Pick the data source for a run: `open_source(dataset, data_dir, image_size, ...)`.

- `data_dir` given: a local folder or archive, detected by its layout:
  the CIFAR-10 binary version (`cifar-10-binary.tar.gz`, its
  `cifar-10-batches-bin/` folder, or a folder holding either), else an image
  folder (`DIR/train/<class>/*`, `DIR/test/<class>/*`).
- `dataset == "synthetic"`: the generated set (`SyntheticSource()`).
- otherwise: the tensorflow-datasets set `dataset` (default `cifar10`).

`image_size` (height, width) reaches only the sources that resize each
example as they read it (image folders, tensorflow-datasets sets without a
fixed image size); fixed-size data is resized later, by the pipeline.
`skip_bad_images` reaches only image folders, the one source that decodes
file by file: undecodable files are left out (and logged in one line)
instead of stopping the run. The source modules are imported on demand so
that, for example, a run on an image folder never imports tensorflow-datasets.
"""

import os

from kerascnn.data.contract import DataSource
from kerascnn.errors import ConfigError, DataError

DEFAULT_DATASET = "cifar10"
LOCAL_LAYOUTS = (
    "--data-dir takes the CIFAR-10 binary version (cifar-10-binary.tar.gz or its "
    "cifar-10-batches-bin/ folder) or an image folder (DIR/train/<class>/<images>, "
    "DIR/test/<class>/<images>)"
)


def _checked_image_size(image_size):
    if image_size is None:
        return None
    try:
        size = tuple(int(d) for d in image_size)
        ok = len(size) == 2 and min(size) > 0 and all(int(d) == d for d in image_size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            "image size must be two positive integers (height, width). "
            f"Received: image_size={image_size!r}"
        )
    return size


def open_local(data_dir, image_size=None, skip_bad_images=False, log=print) -> DataSource:
    """A CIFAR-10 binary archive/folder or an image folder, detected by layout.

    `log` receives the one line about files `skip_bad_images` left out.
    """
    from kerascnn.data import cifar_binary

    path = os.path.abspath(os.fspath(data_dir))
    if not os.path.exists(path):
        raise DataError(f"data folder {path} does not exist: {LOCAL_LAYOUTS}")
    if cifar_binary.resolve(path) is not None:
        return cifar_binary.CifarBinarySource(path)
    if os.path.isdir(os.path.join(path, "train")):
        from kerascnn.data.image_folder import ImageFolderSource

        source = ImageFolderSource(path, image_size=image_size, skip_bad_images=skip_bad_images)
        note = source.describe_skipped()
        if note and log is not None:
            log(note)
        return source
    raise DataError(f"{path} is neither CIFAR-10 binary data nor an image folder: {LOCAL_LAYOUTS}")


def open_source(
    dataset=None, data_dir=None, image_size=None, skip_bad_images=False, log=print
) -> DataSource:
    """The source a run reads its examples from (see the module docstring).

    `log` receives the one line about files `skip_bad_images` left out
    (the full list is the source's `skipped_images`).

    Raises:
        ConfigError: both `dataset` and `data_dir` given, or a bad `image_size`.
        DataError: the data cannot be found, read or downloaded.
    """
    if dataset is not None and data_dir is not None:
        raise ConfigError(
            "give either --dataset (a tensorflow-datasets name or synthetic) or --data-dir "
            f"(local data), not both. Received: dataset={dataset!r}, data_dir={data_dir!r}"
        )
    image_size = _checked_image_size(image_size)
    if data_dir is not None:
        return open_local(data_dir, image_size, skip_bad_images, log)
    if dataset == "synthetic":
        from kerascnn.data.synthetic import SyntheticSource

        return SyntheticSource()
    from kerascnn.data.tfds_source import TfdsSource

    return TfdsSource(dataset or DEFAULT_DATASET, image_size=image_size)
