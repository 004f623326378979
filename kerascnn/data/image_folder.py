"""Images in class folders, decoded and resized in tf.data.

Layout:

    ROOT/train/<class name>/<image files>
    ROOT/test/<class name>/<image files>

Class names are the sorted names of the folders in `ROOT/train` (label i is
the i-th name); every folder in `ROOT/test` must also be in `ROOT/train`.
Image files are those ending in .jpg, .jpeg, .png, .bmp or .gif (any case);
other files, and names starting with a dot, are ignored. The fixed order is
class by class in label order, files sorted by name within each class.

Every image is decoded with `tf.io.decode_image(channels=3,
expand_animations=False)` (the first frame of a GIF) and resized to
`image_size` (height, width); without `image_size` the size of the first
training image is used. Resizing is bilinear with antialiasing, rounded and
clipped back to uint8, and skipped for images that already have the size.
Grayscale (with or without alpha) and palette images come out as RGB, the
gray channel repeated; an alpha channel is dropped, not blended.

A file that cannot be read or decoded (truncated, empty, not an image
despite its extension) stops the run with one error naming it. With
`skip_bad_images=True` every image file is decoded once when the source is
made, in tf.data in parallel chunks, and the ones that fail are left out of
their split before anything is counted: `num_train`, `num_test` and the
seeded validation split then see only readable images, and
`skipped_images` names the files left out.
"""

import os

import numpy as np
import tensorflow as tf

from kerascnn.data.contract import DataSource, SourceInfo
from kerascnn.data.contract import checked_indices
from kerascnn.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LAYOUT = "expected ROOT/train/<class>/<images> and ROOT/test/<class>/<images>"
_CHECK_CHUNK = 8192  # files decoded per step while looking for corrupt ones
_SHOWN_SKIPPED = 3  # paths named in the one-line note about skipped files


def resize_uint8(image, size):
    """Resize a uint8 `(h, w, 3)` image to `size` = (height, width), as uint8.

    Returns the image untouched when it already has that size, so
    fixed-size data pays nothing for the check.
    """
    size = tf.constant(size, dtype=tf.int32)

    def resized():
        x = tf.image.resize(image, size, method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)

    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    return tf.cond(same, lambda: image, resized)


def decode_rgb(contents):
    """Decode JPEG/PNG/BMP/GIF bytes to uint8 `(h, w, 3)`."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _subfolders(folder):
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _image_files(folder):
    files = sorted(
        e.name
        for e in os.scandir(folder)
        if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise DataError(
            f"class folder {folder} has no images (.jpg, .jpeg, .png, .bmp or .gif): "
            f"add images or remove the folder; {LAYOUT}"
        )
    return [os.path.join(folder, f) for f in files]


def _scan_split(split_dir, class_names):
    """(paths, labels) of one split, in the fixed order."""
    paths, labels = [], []
    for name in class_names:
        folder = os.path.join(split_dir, name)
        if not os.path.isdir(folder):
            continue  # a class without test images is allowed
        files = _image_files(folder)
        paths += files
        labels += [class_names.index(name)] * len(files)
    return paths, np.asarray(labels, dtype=np.int32)


def _first_image_size(path):
    """(height, width) from the image header, without decoding the pixels."""
    from PIL import Image  # only needed here; keeps import of this module light

    try:
        with Image.open(path) as im:
            width, height = im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        # OSError includes PIL's UnidentifiedImageError (not an image at all).
        raise DataError(_corrupt_message(path)) from None
    return height, width


def _corrupt_message(path):
    return (
        f"corrupt image file {path}: it cannot be decoded as JPEG, PNG, BMP or GIF; "
        "remove or replace it, or pass --skip-bad-images to leave out every such file"
    )


def _decodable(paths, stop_at_first_bad=False):
    """A bool array: which of `paths` can be read and decoded by the pipeline's op.

    The files are decoded in tf.data, in parallel, `_CHECK_CHUNK` at a time
    (one Python step per chunk of thousands of files, not one per file);
    only each image's shape leaves the graph, so memory stays small. A
    failing file is dropped by `ignore_errors`, so the index missing from
    the results is the bad file. With `stop_at_first_bad` the chunks after
    the first one with a failure are not decoded (their entries stay True).
    """
    ok = np.ones(len(paths), dtype=bool)
    for start in range(0, len(paths), _CHECK_CHUNK):
        chunk = paths[start : start + _CHECK_CHUNK]
        ds = tf.data.Dataset.from_tensor_slices(
            (np.arange(len(chunk)), np.asarray(chunk, dtype=str))
        )
        ds = ds.map(
            lambda i, p: (i, tf.shape(decode_rgb(tf.io.read_file(p)))),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,  # order does not matter: the indices say which
        ).ignore_errors()  # drops failing elements: the missing index is the bad file
        seen = np.zeros(len(chunk), dtype=bool)
        for i, _ in ds.batch(1024).as_numpy_iterator():
            seen[i] = True
        ok[start : start + len(chunk)] = seen
        if stop_at_first_bad and not seen.all():
            break
    return ok


class ImageFolderSource(DataSource):
    """Images in `ROOT/{train,test}/<class>/` folders (see the module docstring).

    Args:
        root: the folder that holds `train/` and `test/`.
        image_size: `(height, width)` every image is resized to, or None for
            the size of the first (readable) training image.
        skip_bad_images: decode every file now and leave out those that
            fail, instead of stopping the run at the first one; they are
            listed in `skipped_images` (absolute paths, train then test, in
            the fixed order).
    """

    def __init__(self, root, image_size=None, skip_bad_images=False):
        self.root = os.path.abspath(os.fspath(root))
        train_dir = os.path.join(self.root, "train")
        test_dir = os.path.join(self.root, "test")
        for folder in (self.root, train_dir, test_dir):
            if not os.path.isdir(folder):
                raise DataError(f"image folder {folder} does not exist: {LAYOUT}")

        class_names = _subfolders(train_dir)
        if not class_names:
            raise DataError(f"{train_dir} has no class folders: {LAYOUT}")
        test_classes = _subfolders(test_dir)
        if not test_classes:
            raise DataError(f"{test_dir} has no class folders: {LAYOUT}")
        unknown = sorted(set(test_classes) - set(class_names))
        if unknown:
            raise DataError(
                f"{test_dir} has class folders that {train_dir} lacks: {', '.join(unknown)}; "
                f"every test class needs training images ({LAYOUT})"
            )

        self._train_paths, self._train_labels = _scan_split(train_dir, class_names)
        self._test_paths, self._test_labels = _scan_split(test_dir, class_names)
        self.skipped_images = ()
        self._skipped_per_split = (0, 0)
        if skip_bad_images:
            # Before anything is counted, so num_train/num_test and the seeded
            # validation split only ever see readable files.
            self._leave_out_unreadable(train_dir, test_dir)
        if image_size is None:
            image_size = _first_image_size(self._train_paths[0])
        self.image_size = tuple(int(d) for d in image_size)
        self.info = SourceInfo(
            name=f"folder:{self.root}",
            class_names=tuple(class_names),
            num_train=len(self._train_paths),
            num_test=len(self._test_paths),
            image_shape=self.image_size + (3,),
        )

    def _leave_out_unreadable(self, train_dir, test_dir):
        n_train = len(self._train_paths)
        ok = _decodable(self._train_paths + self._test_paths)
        if ok.all():
            return
        ok_train, ok_test = ok[:n_train], ok[n_train:]
        self.skipped_images = tuple(
            p for p, good in zip(self._train_paths + self._test_paths, ok) if not good
        )
        self._skipped_per_split = (int((~ok_train).sum()), int((~ok_test).sum()))
        for split_dir, keep in ((train_dir, ok_train), (test_dir, ok_test)):
            if not keep.any():
                raise DataError(
                    f"no image in {split_dir} can be decoded as JPEG, PNG, BMP or GIF "
                    f"({len(keep)} files): replace them, or check that --data-dir is the "
                    "right folder"
                )
        self._train_paths = [p for p, good in zip(self._train_paths, ok_train) if good]
        self._train_labels = self._train_labels[ok_train]
        self._test_paths = [p for p, good in zip(self._test_paths, ok_test) if good]
        self._test_labels = self._test_labels[ok_test]

    def describe_skipped(self):
        """One line about the files left out by `skip_bad_images`, or None if none were."""
        if not self.skipped_images:
            return None
        n = len(self.skipped_images)
        n_train, n_test = self._skipped_per_split
        shown = ", ".join(self.skipped_images[:_SHOWN_SKIPPED])
        more = f" and {n - _SHOWN_SKIPPED} more" if n > _SHOWN_SKIPPED else ""
        return (
            f"skipped {n} image file{'s' if n != 1 else ''} that cannot be decoded "
            f"({n_train} train, {n_test} test; --skip-bad-images): {shown}{more}"
        )

    def _dataset(self, paths, labels):
        size = self.image_size
        shape = self.info.image_shape

        def load(path, label):
            image = resize_uint8(decode_rgb(tf.io.read_file(path)), size)
            return tf.ensure_shape(image, shape), label

        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def train_examples(self, indices):
        idx = checked_indices(indices, self.info.num_train)
        paths = np.asarray(self._train_paths, dtype=object)[idx].astype(str)
        return self._dataset(paths, self._train_labels[idx])

    def test_examples(self):
        return self._dataset(np.asarray(self._test_paths, dtype=str), self._test_labels)

    def train_reader(self, indices):
        # The files are listed class by class: read in that order, a large folder's batches
        # would each hold a few neighbouring classes, whatever a shuffle buffer can mix.
        idx = checked_indices(indices, self.info.num_train)
        paths = tf.constant(np.asarray(self._train_paths, dtype=object)[idx].astype(str))
        labels = tf.constant(self._train_labels[idx])
        return lambda order: self._dataset(tf.gather(paths, order), tf.gather(labels, order))

    def find_unreadable(self):
        """The first file (train, then test) that cannot be read and decoded, or None.

        Decodes with the same op as the pipeline, in parallel chunks, and
        stops after the first chunk with a failure.
        """
        paths = self._train_paths + self._test_paths
        ok = _decodable(paths, stop_at_first_bad=True)
        return None if ok.all() else paths[int(np.argmin(ok))]

    def describe_read_error(self, error):
        bad = self.find_unreadable()
        if bad is None:
            first_line = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            return f"could not read the images of {self.info.name}: {first_line}"
        if not os.path.isfile(bad):
            return (
                f"image file {bad} has disappeared since the folder was scanned: "
                "restore it or run again"
            )
        return _corrupt_message(bad)
