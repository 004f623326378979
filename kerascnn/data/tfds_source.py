"""Image-classification sets from tensorflow-datasets (cifar10, mnist, ...).

Any tensorflow-datasets set with an `image` feature (uint8) and a `label`
ClassLabel feature works. The training split is `train`; the test split is
`test`, else `validation`. Grayscale images are repeated to three channels
(an alpha channel is dropped), labels are cast to int32. Sets whose images
have no fixed height and width are resized per example to `image_size`.

A set that is not in the tensorflow-datasets cache is downloaded and
prepared once. When that fails (no network, most often) the source raises
`DataError` and removes what the failed attempt left in the cache folder,
so a later run starts clean.

`tensorflow_datasets` is imported inside the class: it takes seconds to
import, and the other sources never need it.
"""

import contextlib
import difflib
import logging
import os
import shutil
import sys

import numpy as np
import tensorflow as tf

from kerascnn.data.image_folder import resize_uint8
from kerascnn.data.contract import DataSource, SourceInfo
from kerascnn.data.contract import checked_indices, checked_label
from kerascnn.errors import DataError

# tensorflow-datasets retries each URL 10 times with exponential backoff
# (0.2 s doubling, capped at 120 s): without a network a download fails only
# after about 200 s. Three retries still ride out a transient error.
_DOWNLOAD_RETRIES = 3
_OFFLINE_HINT = "use --data-dir DIR for local data or --dataset synthetic for a smoke run"


@contextlib.contextmanager
def _few_download_retries():
    """Temporarily lower tensorflow-datasets' per-URL retry count.

    `downloader.MAX_RETRIES` is read each time a URL is opened, so changing
    the module attribute is enough; it is restored afterwards.
    """
    try:
        from tensorflow_datasets.core.download import downloader
    except ImportError:
        downloader = None
    old = getattr(downloader, "MAX_RETRIES", None)
    if not isinstance(old, int):
        yield
        return
    downloader.MAX_RETRIES = min(old, _DOWNLOAD_RETRIES)
    try:
        yield
    finally:
        downloader.MAX_RETRIES = old


@contextlib.contextmanager
def _quiet_download():
    """Keep a failed download's noise off stderr, where the error is one line.

    urllib3 logs a warning per retry; those are silenced. tensorflow-datasets'
    progress bars are kept for a person at a terminal and hidden when stderr
    is a pipe or a file (CI, tests, logs), where they would only clutter it.

    After a failure the retry warnings stay silenced: tensorflow-datasets
    raises at the first failed URL while its download threads go on with the
    others, and would log their retries after the error line.
    """
    from tensorflow_datasets.core.utils import tqdm_utils

    retry_logger = logging.getLogger("urllib3.connectionpool")
    old_level, old_bars = retry_logger.level, getattr(tqdm_utils, "_active", True)
    retry_logger.setLevel(logging.ERROR)
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        tqdm_utils.display_progress_bar(False)
    try:
        yield
    except BaseException:
        tqdm_utils.display_progress_bar(old_bars)
        raise
    tqdm_utils.display_progress_bar(old_bars)
    retry_logger.setLevel(old_level)


def _listing(folder):
    try:
        return set(os.listdir(folder))
    except OSError:
        return None


class _CacheGuard:
    """Undoes what a failed `download_and_prepare` left in the cache folder.

    tensorflow-datasets prepares into a temporary folder that it removes
    itself, but a failed download leaves empty `<root>/<name>/...` folders,
    `<root>/downloads/<name>/*.tmp.*` folders and `<root>/downloads/extracted`.
    (tensorflow-datasets creates every `.tmp.` folder before it starts the
    downloads; removing them also makes any download thread that is still
    running fail to write.)
    This snapshot lists the folders involved before the attempt; afterwards
    folders that did not exist are removed whole, and in folders that did
    exist only new temporary (`.tmp.`, `incomplete`) entries are removed, so
    nothing a previous run cached is touched.
    """

    def __init__(self, root, dataset_dir):
        self.active = "://" not in root  # leave remote caches (gs://) alone
        downloads = os.path.join(root, "downloads")
        dirs = [
            root,
            downloads,
            os.path.join(downloads, "extracted"),
            os.path.join(downloads, "manual"),
        ]
        dirs += [os.path.join(downloads, d) for d in sorted(_listing(downloads) or ())]
        rel = os.path.relpath(dataset_dir, root)
        if not rel.startswith(".."):
            parts = rel.split(os.sep)
            dirs += [os.path.join(root, *parts[:i]) for i in range(1, len(parts) + 1)]
        self.before = {d: _listing(d) for d in dict.fromkeys(dirs)} if self.active else {}
        self.downloads = downloads

    def undo(self):
        if not self.active:
            return
        # Deepest first, so a parent sees its children already handled.
        for folder in sorted(self.before, key=lambda d: d.count(os.sep), reverse=True):
            before = self.before[folder]
            now = _listing(folder)
            if now is None:
                continue
            if before is None:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            for entry in now - before:
                new_download = folder == self.downloads
                if new_download or ".tmp." in entry or "incomplete" in entry:
                    path = os.path.join(folder, entry)
                    if os.path.isdir(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.remove(path)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unknown_name_error(tfds, name):
    try:
        known = list(tfds.list_builders(with_community_datasets=False))
    except Exception:  # noqa: BLE001 -- the suggestion is a courtesy; never fail on it
        known = []
    close = difflib.get_close_matches(name.lower(), known + ["synthetic"], n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return DataError(
        f"unknown dataset {name!r}: {hint}any tensorflow-datasets image-classification "
        "name works (cifar10, cifar100, mnist, fashion_mnist, ...), or synthetic"
    )


class TfdsSource(DataSource):
    """A tensorflow-datasets image-classification set (see the module docstring).

    Args:
        name: the tensorflow-datasets name, optionally with config and
            version (`cifar10`, `mnist:3.*.*`).
        image_size: `(height, width)`; used only for sets whose images have
            no fixed size, which need it.
        tfds_data_dir: the tensorflow-datasets cache folder; default: the
            `TFDS_DATA_DIR` environment variable (read now, not at import),
            else tensorflow-datasets' own default (`~/tensorflow_datasets`).
    """

    def __init__(self, name, image_size=None, tfds_data_dir=None):
        import tensorflow_datasets as tfds

        self._tfds = tfds
        data_dir = tfds_data_dir or os.environ.get("TFDS_DATA_DIR") or None
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.DatasetNotFoundError:
            raise _unknown_name_error(tfds, name) from None
        except (ValueError, AssertionError) as e:
            if "Parsing builder name" in str(e):  # not even a valid name ("cifar-10")
                raise _unknown_name_error(tfds, name) from None
            # A known set with a bad config or version ("cifar10:9.9.9").
            raise DataError(f"cannot use tensorflow-datasets {name!r}: {_first_line(e)}") from None

        features = builder.info.features
        # FeaturesDict has no .get()
        image = features["image"] if "image" in features else None  # noqa: SIM401
        label = features["label"] if "label" in features else None  # noqa: SIM401
        if not isinstance(image, tfds.features.Image) or not isinstance(
            label, tfds.features.ClassLabel
        ):
            raise DataError(
                f"{name} is not an image-classification set: it needs an 'image' and a 'label' "
                f"(class label) feature, and has {', '.join(sorted(features.keys()))}; "
                "use cifar10, cifar100, mnist, fashion_mnist or another such set"
            )
        if np.dtype(image.np_dtype) != np.uint8:
            raise DataError(
                f"{name} images are {np.dtype(image.np_dtype).name}, not 8-bit: use another set"
            )
        height, width, channels = image.shape
        if height is None or width is None:
            if image_size is None:
                raise DataError(
                    f"{name} images have no fixed size: pass --image-size to choose the "
                    "size every image is resized to"
                )
            height, width = (int(d) for d in image_size)
            self._resize_to = (height, width)
        else:
            self._resize_to = None
        self._channels = channels

        if not builder.is_prepared():
            self._prepare(builder, name)
        splits = builder.info.splits
        if "train" not in splits:
            raise DataError(
                f"{name} has no 'train' split (it has {', '.join(splits.keys())}): use another set"
            )
        test_split = next((s for s in ("test", "validation") if s in splits), None)
        if test_split is None:
            raise DataError(
                f"{name} has neither a 'test' nor a 'validation' split "
                f"(it has {', '.join(splits.keys())}): use another set"
            )
        self._builder = builder
        self._test_split = test_split
        self.info = SourceInfo(
            # The canonical name ("MNIST" -> "mnist"), unless a config or version was asked for.
            name=name if (":" in name or "/" in name) else builder.name,
            class_names=tuple(label.names),
            num_train=int(splits["train"].num_examples),
            num_test=int(splits[test_split].num_examples),
            image_shape=(int(height), int(width), 3),
        )

    @staticmethod
    def _prepare(builder, name):
        root = os.fspath(builder.data_dir_root)
        guard = _CacheGuard(root, os.fspath(builder.data_dir))
        try:
            with _few_download_retries(), _quiet_download():
                builder.download_and_prepare()
        except ImportError as e:
            guard.undo()
            raise DataError(
                f"tensorflow-datasets cannot prepare {name}: {_first_line(e)} (install the "
                f"missing package, e.g. pip install {getattr(e, 'name', None) or 'it'}), "
                f"or {_OFFLINE_HINT}"
            ) from e
        except Exception as e:
            guard.undo()
            if "manual" in str(e).lower():
                raise DataError(
                    f"{name} must be downloaded by hand into the tensorflow-datasets cache "
                    f"({root}): {_first_line(e)}; or {_OFFLINE_HINT}"
                ) from e
            raise DataError(
                f"{name} is not in the tensorflow-datasets cache ({root}) and downloading it "
                f"failed ({type(e).__name__}; no network?): {_OFFLINE_HINT}"
            ) from e
        except BaseException:  # Ctrl-C: still leave nothing half-written
            guard.undo()
            raise

    def _to_example(self, example):
        """Decode one stored example to `(uint8 (h, w, 3), int32 label)`."""
        image = self._builder.info.features["image"].decode_example(example["image"])
        channels = self._channels
        if channels == 1:
            image = tf.repeat(image, 3, axis=-1)
        elif channels is None:  # unknown: decided per image (gray, gray+alpha, RGB, RGBA)
            image = tf.cond(
                tf.shape(image)[-1] < 3,
                lambda: tf.repeat(image[..., :1], 3, axis=-1),
                lambda: image[..., :3],
            )
        elif channels > 3:
            image = image[..., :3]  # drop alpha
        if self._resize_to is not None:
            image = resize_uint8(image, self._resize_to)
        # tfds marks unlabelled examples with -1, which one_hot would turn
        # into an all-zero target without a word; fail on it instead.
        label = checked_label(tf.cast(example["label"], tf.int32), self.info.num_classes)
        return tf.ensure_shape(image, self.info.image_shape), label

    def _read(self, split):
        # Images stay encoded until after any filtering, so examples that are
        # not selected are never decoded. shuffle_files=False: a fixed order.
        return self._builder.as_dataset(
            split=split,
            shuffle_files=False,
            decoders={"image": self._tfds.decode.SkipDecoding()},
        )

    def train_examples(self, indices):
        idx = checked_indices(indices, self.info.num_train)
        ds = self._read("train")
        if len(idx) < self.info.num_train:
            mask = np.zeros(self.info.num_train, dtype=bool)
            mask[idx] = True
            mask = tf.constant(mask)
            ds = ds.enumerate().filter(lambda i, ex: tf.gather(mask, i)).map(lambda i, ex: ex)
        return ds.map(self._to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def test_examples(self):
        return self._read(self._test_split).map(
            self._to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
