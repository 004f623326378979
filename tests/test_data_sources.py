"""The four data sources and `open_source`, on tiny data written by the tests."""

import functools
import importlib.util
import os
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import cifar_records, class_colour, make_cifar_binary, make_image_folder

from kerascnn.data.cifar_binary import CifarBinarySource
from kerascnn.data.image_folder import ImageFolderSource
from kerascnn.data.choose_source import open_source
from kerascnn.data.synthetic import SyntheticSource
from kerascnn.data.tfds_source import TfdsSource
from kerascnn.errors import ConfigError, DataError

# tensorflow-datasets 4.9.10 imports importlib_resources to prepare any data
# set but does not declare it (tensorflow/datasets#11212): without it the
# preparation fails before any download.
HAS_IMPORTLIB_RESOURCES = importlib.util.find_spec("importlib_resources") is not None
needs_tfds_prepare = pytest.mark.skipif(
    not HAS_IMPORTLIB_RESOURCES,
    reason="tensorflow-datasets cannot prepare data without importlib_resources "
    "(pip install importlib_resources; tensorflow/datasets#11212)",
)


def collect(ds):
    """All `(image, label)` pairs of a dataset as two NumPy arrays."""
    images, labels = [], []
    for image, label in ds.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    return np.stack(images), np.array(labels)


# ---------------------------------------------------------------- CIFAR binary


@pytest.mark.parametrize("as_tar", [True, False], ids=["archive", "folder"])
def test_cifar_binary_gives_exactly_the_pixels_and_labels_written(tmp_path, as_tar):
    path, arrays = make_cifar_binary(tmp_path, n_train_per_batch=6, n_test=7, as_tar=as_tar)
    source = CifarBinarySource(path)

    assert source.info.name == f"cifar10-binary:{os.path.abspath(path)}"
    assert source.info.class_names == arrays["class_names"]
    assert (source.info.num_train, source.info.num_test) == (30, 7)
    assert source.info.image_shape == (32, 32, 3)

    images, labels = collect(source.train_examples(np.arange(30)))
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, arrays["train_images"])
    np.testing.assert_array_equal(labels, arrays["train_labels"])
    images, labels = collect(source.test_examples())
    np.testing.assert_array_equal(images, arrays["test_images"])
    np.testing.assert_array_equal(labels, arrays["test_labels"])


def test_cifar_binary_record_layout_is_label_then_red_green_blue_planes(tmp_path):
    # Written by hand, independently of conftest's writer: one record whose
    # three planes hold 10, 20, 30, with red pixel (row 0, column 1) = 99 and
    # blue pixel (row 2, column 0) = 77.
    record = bytearray([3]) + bytes([10] * 1024) + bytes([20] * 1024) + bytes([30] * 1024)
    record[1 + 1] = 99
    record[1 + 2048 + 2 * 32 + 0] = 77
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(bytes(record))

    source = CifarBinarySource(tmp_path)  # the folder that contains cifar-10-batches-bin
    image, label = next(source.test_examples().as_numpy_iterator())
    assert label == 3
    assert tuple(image[5, 5]) == (10, 20, 30)
    assert tuple(image[0, 1]) == (99, 20, 30)
    assert tuple(image[2, 0]) == (10, 20, 77)
    # No batches.meta.txt: the standard names.
    assert source.info.class_names[0] == "airplane" and source.info.num_classes == 10


def test_cifar_binary_train_examples_selects_exactly_the_given_indices(tmp_path):
    path, arrays = make_cifar_binary(tmp_path, n_train_per_batch=8)
    source = CifarBinarySource(path)
    wanted = np.array([39, 0, 17, 8, 17])  # any order, repeats allowed: fixed order out
    images, labels = collect(source.train_examples(wanted))
    expected = np.array([0, 8, 17, 39])
    np.testing.assert_array_equal(images, arrays["train_images"][expected])
    np.testing.assert_array_equal(labels, arrays["train_labels"][expected])


def test_cifar_binary_truncated_file_raises_data_error_naming_it(tmp_path):
    path, _ = make_cifar_binary(tmp_path, as_tar=False)
    batch = os.path.join(path, "data_batch_3.bin")
    with open(batch, "r+b") as f:
        f.truncate(3073 * 4 + 100)
    with pytest.raises(DataError, match="data_batch_3.bin is 12392 bytes.*3073"):
        CifarBinarySource(path)


def test_cifar_binary_truncated_member_of_archive_raises_data_error(tmp_path):
    path, _ = make_cifar_binary(tmp_path, as_tar=False)
    with open(os.path.join(path, "test_batch.bin"), "r+b") as f:
        f.truncate(3073 - 1)
    archive = tmp_path / "cut.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(path, arcname="cifar-10-batches-bin")
    with pytest.raises(DataError, match="test_batch.bin is 3072 bytes"):
        CifarBinarySource(archive)


def test_cifar_binary_missing_batch_and_bad_label_raise_data_error(tmp_path):
    path, _ = make_cifar_binary(tmp_path / "a", as_tar=False)
    os.remove(os.path.join(path, "data_batch_5.bin"))
    with pytest.raises(DataError, match="data_batch_5.bin missing"):
        CifarBinarySource(path)

    path, arrays = make_cifar_binary(tmp_path / "b", as_tar=False)
    labels = arrays["test_labels"].copy()
    labels[4] = 10
    with open(os.path.join(path, "test_batch.bin"), "wb") as f:
        f.write(cifar_records(arrays["test_images"], labels))
    with pytest.raises(DataError, match="record 4 has label 10"):
        CifarBinarySource(path)


def test_cifar_binary_reads_class_names_from_meta_file(tmp_path):
    names = tuple(f"thing{i}" for i in range(10))
    path, _ = make_cifar_binary(tmp_path, class_names=names)
    assert CifarBinarySource(path).info.class_names == names


# ---------------------------------------------------------------- image folder


def test_image_folder_class_names_counts_labels_and_pixels(tmp_path):
    root = make_image_folder(
        tmp_path / "pics", classes=("dog", "cat", "bird"), per_class=3, test_per_class=2
    )
    # Files that are not images are ignored; the extension check ignores case.
    (tmp_path / "pics" / "train" / "cat" / "notes.txt").write_text("not an image")
    os.rename(tmp_path / "pics/train/cat/0000.png", tmp_path / "pics/train/cat/0000.PNG")

    source = ImageFolderSource(root)
    info = source.info
    assert info.name == f"folder:{os.path.abspath(root)}"
    assert info.class_names == ("bird", "cat", "dog")
    assert (info.num_train, info.num_test, info.image_shape) == (9, 6, (32, 32, 3))

    images, labels = collect(source.train_examples(np.arange(9)))
    assert images.shape == (9, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    # Same size as the target: the pixels are exactly the file's.
    from PIL import Image

    with Image.open(tmp_path / "pics/train/cat/0000.PNG") as im:
        np.testing.assert_array_equal(images[3], np.asarray(im.convert("RGB")))

    some, some_labels = collect(source.train_examples([7, 1]))
    np.testing.assert_array_equal(some, images[[1, 7]])
    np.testing.assert_array_equal(some_labels, [0, 2])
    _, test_labels = collect(source.test_examples())
    np.testing.assert_array_equal(test_labels, [0, 0, 1, 1, 2, 2])


def test_image_folder_resizes_mixed_sizes_to_the_first_training_image(tmp_path):
    root = tmp_path / "pics"
    make_image_folder(root, classes=("a",), per_class=1, test_per_class=1, size=(20, 30), fmt="jpg")
    make_image_folder(
        root / "more", classes=("b",), per_class=2, test_per_class=1, size=(41, 17), fmt="bmp"
    )
    for split in ("train", "test"):
        os.rename(root / "more" / split / "b", root / split / "b")
    os.rmdir(root / "more" / "train")
    os.rmdir(root / "more" / "test")
    os.rmdir(root / "more")

    source = ImageFolderSource(root)
    assert source.info.image_shape == (20, 30, 3)
    images, labels = collect(source.train_examples(np.arange(3)))
    assert images.shape == (3, 20, 30, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 1, 1])
    # Resizing keeps the colour ("b" was written as the first class of its
    # tree: class_colour(0), red).
    assert abs(images[1].mean(axis=(0, 1)) - class_colour(0)).max() < 12

    fixed = ImageFolderSource(root, image_size=(16, 24))
    assert fixed.info.image_shape == (16, 24, 3)
    images, _ = collect(fixed.test_examples())
    assert images.shape == (2, 16, 24, 3)


def test_image_folder_reads_gif_first_frame(tmp_path):
    root = make_image_folder(tmp_path / "pics", per_class=1, test_per_class=1, fmt="gif")
    images, _ = collect(ImageFolderSource(root).test_examples())
    assert images.shape == (2, 32, 32, 3)


def test_image_folder_corrupt_image_is_named_after_iterating_fails(tmp_path):
    root = make_image_folder(tmp_path / "pics", per_class=3, test_per_class=2)
    bad = tmp_path / "pics" / "test" / "dog" / "0001.jpg"
    bad.write_bytes(b"these bytes are not a jpeg at all")
    source = ImageFolderSource(root)
    collect(source.train_examples(np.arange(6)))  # the training images are fine

    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        collect(source.test_examples())
    message = source.describe_read_error(caught.value)
    assert message == (
        f"corrupt image file {bad}: it cannot be decoded as JPEG, PNG, BMP or GIF; "
        "remove or replace it, or pass --skip-bad-images to leave out every such file"
    )


def test_image_folder_corrupt_first_image_is_reported_when_opening(tmp_path):
    root = make_image_folder(tmp_path / "pics", per_class=2)
    (tmp_path / "pics" / "train" / "cat" / "0000.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"corrupt image file .*cat/0000\.png"):
        ImageFolderSource(root)


@pytest.mark.parametrize(
    "damage, match",
    [
        (
            lambda r: os.rename(r / "test", r / "tst"),
            r"pics/test does not exist: expected ROOT/train",
        ),
        (lambda r: os.rename(r / "train", r / "trn"), r"pics/train does not exist"),
        (
            lambda r: [os.remove(p) for p in (r / "train" / "cat").iterdir()],
            r"class folder .*train/cat has no images",
        ),
        (
            lambda r: [os.remove(p) for p in (r / "test" / "dog").iterdir()],
            r"test/dog has no images",
        ),
        (lambda r: (r / "test" / "cow").mkdir(), r"class folders that .*train lacks: cow"),
    ],
    ids=["no-test", "no-train", "empty-train-class", "empty-test-class", "unknown-test-class"],
)
def test_image_folder_bad_layouts_raise_data_error(tmp_path, damage, match):
    root = tmp_path / "pics"
    make_image_folder(root, per_class=1, test_per_class=1)
    damage(root)
    with pytest.raises(DataError, match=match):
        ImageFolderSource(root)


def test_image_folder_missing_root_and_no_classes_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="nowhere does not exist"):
        ImageFolderSource(tmp_path / "nowhere")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir()
    with pytest.raises(DataError, match="train has no class folders"):
        ImageFolderSource(tmp_path / "empty")


# ---------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_whatever_the_global_seeds():
    np.random.seed(1)
    tf.random.set_seed(1)
    a = SyntheticSource(num_train=64, num_test=16)
    np.random.seed(2)
    tf.random.set_seed(2)
    b = SyntheticSource(num_train=64, num_test=16)
    for ds_a, ds_b in (
        (a.train_examples(np.arange(64)), b.train_examples(np.arange(64))),
        (a.test_examples(), b.test_examples()),
    ):
        for x, y in zip(collect(ds_a), collect(ds_b)):
            np.testing.assert_array_equal(x, y)
    c = SyntheticSource(num_train=64, num_test=16, seed=1)
    assert not np.array_equal(collect(a.test_examples())[0], collect(c.test_examples())[0])
    # The training set does not depend on the size of the test set.
    d = SyntheticSource(num_train=64, num_test=40)
    np.testing.assert_array_equal(
        collect(a.train_examples(np.arange(64)))[0], collect(d.train_examples(np.arange(64)))[0]
    )


def test_synthetic_info_and_selection():
    source = SyntheticSource(num_train=50, num_test=20, num_classes=5, image_shape=(24, 16, 3))
    info = source.info
    assert info.name == "synthetic"
    assert info.class_names == tuple(f"class_{i}" for i in range(5))
    assert (info.num_train, info.num_test, info.image_shape) == (50, 20, (24, 16, 3))
    images, labels = collect(source.train_examples(np.arange(50)))
    assert images.shape == (50, 24, 16, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(labels), [10] * 5)  # balanced
    some, _ = collect(source.train_examples([49, 3]))
    np.testing.assert_array_equal(some, images[[3, 49]])
    with pytest.raises(ValueError, match="indices must lie in"):
        source.train_examples([50])
    with pytest.raises(ConfigError, match="image_shape"):
        SyntheticSource(image_shape=(32, 32, 1))


def test_synthetic_classes_are_separable_by_nearest_class_mean():
    source = SyntheticSource(num_train=1000, num_test=500)
    x, y = (a.astype(np.float32) for a in collect(source.train_examples(np.arange(1000))))
    x = x.reshape(len(x), -1)
    means = np.stack([x[y == k].mean(axis=0) for k in range(10)])
    tx, ty = collect(source.test_examples())
    tx = tx.reshape(len(tx), -1).astype(np.float32)
    predicted = np.argmin(((tx[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == ty).mean() > 0.8


def test_synthetic_is_learnable_by_a_small_cnn_in_one_short_epoch():
    import keras

    source = SyntheticSource(num_train=1024, num_test=256)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = source.train_examples(np.arange(1024)).shuffle(1024, seed=0).batch(32)
    model.fit(train, epochs=1, shuffle=False, verbose=0)  # shuffled above
    _, accuracy = model.evaluate(source.test_examples().batch(128), verbose=0)
    assert accuracy > 0.5  # chance is 0.1


# ---------------------------------------------------------------- open_source


def test_open_source_detects_local_layouts(tmp_path):
    archive, _ = make_cifar_binary(tmp_path / "c")
    folder, _ = make_cifar_binary(tmp_path / "d", as_tar=False)
    pics = make_image_folder(tmp_path / "pics")

    assert isinstance(open_source(data_dir=archive), CifarBinarySource)
    assert isinstance(open_source(data_dir=tmp_path / "c"), CifarBinarySource)  # holds the archive
    assert isinstance(open_source(data_dir=folder), CifarBinarySource)
    assert isinstance(open_source(data_dir=tmp_path / "d"), CifarBinarySource)  # holds the folder
    source = open_source(data_dir=pics, image_size=(16, 20))
    assert isinstance(source, ImageFolderSource) and source.info.image_shape == (16, 20, 3)
    # Fixed-size data ignores image_size: the pipeline resizes it.
    assert open_source(data_dir=archive, image_size=(64, 64)).info.image_shape == (32, 32, 3)


def test_open_source_errors(tmp_path):
    with pytest.raises(
        DataError, match="does not exist: --data-dir takes the CIFAR-10 binary.*image folder"
    ):
        open_source(data_dir=tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hello")
    with pytest.raises(
        DataError, match="neither CIFAR-10 binary data nor an image folder.*DIR/train/<class>"
    ):
        open_source(data_dir=tmp_path / "junk")
    not_cifar = tmp_path / "other.tar.gz"
    with tarfile.open(not_cifar, "w:gz") as tar:
        tar.add(tmp_path / "junk" / "readme.txt", arcname="readme.txt")
    with pytest.raises(DataError, match="neither CIFAR-10 binary data"):
        open_source(data_dir=not_cifar)
    with pytest.raises(ConfigError, match="not both"):
        open_source(dataset="mnist", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="image size"):
        open_source(dataset="synthetic", image_size=(32, 0))


def test_open_source_synthetic():
    source = open_source(dataset="synthetic")
    assert isinstance(source, SyntheticSource) and source.info.num_train == 5000


# ---------------------------------------------------------------- tensorflow-datasets


@pytest.mark.parametrize(
    "name, suggestion",
    [("cifar-10", "cifar10"), ("fashion_mnst", "fashion_mnist"), ("synthetc", "synthetic")],
)
def test_tfds_unknown_name_suggests_close_names(tmp_path, name, suggestion):
    with pytest.raises(DataError) as caught:
        TfdsSource(name, tfds_data_dir=str(tmp_path))
    message = str(caught.value)
    assert f"unknown dataset {name!r}" in message and suggestion in message
    assert "any tensorflow-datasets image-classification name works" in message
    assert "\n" not in message


def test_tfds_without_network_fails_fast_and_leaves_the_cache_clean(tmp_path, monkeypatch):
    # A closed local port as proxy: the download fails at once here, and can
    # never start a real 11 MB download on a machine that has a network.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    cache = tmp_path / "tfds"
    cache.mkdir()
    (cache / "keep.txt").write_text("a previous run's file")
    monkeypatch.setenv("TFDS_DATA_DIR", str(cache))

    start = time.monotonic()
    with pytest.raises(DataError) as caught:
        TfdsSource("mnist")
    elapsed = time.monotonic() - start

    message = str(caught.value)
    assert "\n" not in message
    assert "--data-dir" in message and "--dataset synthetic" in message
    assert str(cache) in message or not HAS_IMPORTLIB_RESOURCES
    if HAS_IMPORTLIB_RESOURCES:
        assert "mnist is not in the tensorflow-datasets cache" in message
        # The request went to the proxy, not to the internet.
        assert (
            "127.0.0.1" in repr(caught.value.__cause__)
            or "Proxy" in type(caught.value.__cause__).__name__
        )
    # Nothing half-written is left behind, and nothing that was there is gone.
    assert sorted(p.name for p in cache.iterdir()) == ["keep.txt"]
    # A hang guard, not a speed measurement: tensorflow-datasets' own retries
    # would take about 200 s.
    assert elapsed < 60


@functools.cache
def tiny_builders():
    """Small tensorflow-datasets builders, defined (and so registered) once."""
    import tensorflow_datasets as tfds

    class KerascnnTinyGray(tfds.core.GeneratorBasedBuilder):
        """8x8 grayscale, 3 classes, splits train and validation only."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {
                "train": self._generate_examples(12, 0),
                "validation": self._generate_examples(5, 100),
            }

        def _generate_examples(self, n, offset):
            for i in range(n):
                # The pixel value tells which example it is.
                yield i, {"image": np.full((8, 8, 1), offset + i, np.uint8), "label": i % 3}

    class KerascnnTinyAnySize(tfds.core.GeneratorBasedBuilder):
        """RGB images of varying size."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(None, None, 3)),
                        "label": tfds.features.ClassLabel(num_classes=2),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(), "test": self._generate_examples()}

        def _generate_examples(self):
            for i, (h, w) in enumerate([(5, 7), (9, 4), (6, 6)]):
                yield i, {"image": np.full((h, w, 3), 50 * i, np.uint8), "label": i % 2}

    class KerascnnTinyCaptions(tfds.core.GeneratorBasedBuilder):
        """Images with captions: not image classification."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 3)),
                        "caption": tfds.features.Text(),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            yield 0, {"image": np.zeros((8, 8, 3), np.uint8), "caption": "nothing"}

    return KerascnnTinyGray, KerascnnTinyAnySize, KerascnnTinyCaptions


@needs_tfds_prepare
def test_tfds_source_reads_a_prepared_set(tmp_path):
    tiny_builders()
    source = TfdsSource("kerascnn_tiny_gray", tfds_data_dir=str(tmp_path))
    info = source.info
    assert info.name == "kerascnn_tiny_gray"
    assert info.class_names == ("a", "b", "c")
    assert (info.num_train, info.num_test, info.image_shape) == (12, 5, (8, 8, 3))

    images, labels = collect(source.train_examples(np.arange(12)))
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    # Grayscale repeated to three channels; labels match the generated examples.
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    ids = images[:, 0, 0, 0]
    assert sorted(ids) == list(range(12))
    np.testing.assert_array_equal(labels, ids % 3)

    some, some_labels = collect(source.train_examples([10, 2, 5]))
    np.testing.assert_array_equal(some, images[[2, 5, 10]])
    np.testing.assert_array_equal(some_labels, labels[[2, 5, 10]])
    # No "test" split: "validation" is the test split.
    test_images, _ = collect(source.test_examples())
    assert sorted(test_images[:, 0, 0, 0]) == list(range(100, 105))
    # A second source reuses the prepared cache.
    assert TfdsSource("kerascnn_tiny_gray", tfds_data_dir=str(tmp_path)).info == info


@needs_tfds_prepare
def test_tfds_source_resizes_sets_without_a_fixed_image_size(tmp_path):
    tiny_builders()
    with pytest.raises(DataError, match="no fixed size: pass --image-size"):
        TfdsSource("kerascnn_tiny_any_size", tfds_data_dir=str(tmp_path))
    source = TfdsSource("kerascnn_tiny_any_size", image_size=(6, 6), tfds_data_dir=str(tmp_path))
    assert source.info.image_shape == (6, 6, 3) and source.info.num_test == 3
    images, _ = collect(source.test_examples())
    assert images.shape == (3, 6, 6, 3)
    # Uniform images stay uniform when resized: each is its own fill value.
    assert sorted(images[:, 3, 3, 0]) == [0, 50, 100]


def test_tfds_set_without_image_and_label_raises_data_error(tmp_path):
    tiny_builders()
    with pytest.raises(DataError, match="not an image-classification set.*caption, image"):
        TfdsSource("kerascnn_tiny_captions", tfds_data_dir=str(tmp_path))
