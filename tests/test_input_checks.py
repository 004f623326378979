"""Input checks: resizing and colour conversion, unreadable files, labels outside the classes."""

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import cifar_records, make_cifar_binary, make_image_folder
from PIL import Image
from test_cli import run_cli

from kerascnn.cli.app import main
from kerascnn.data.image_folder import ImageFolderSource
from kerascnn.data.pipeline import read_guard
from kerascnn.data.contract import ArraySource, DataSource, SourceInfo, checked_label
from kerascnn.data.choose_source import open_source
from kerascnn.errors import DataError


def collect(ds):
    images, labels = zip(*ds.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def truncated_jpeg(path, size=(32, 32)):
    """A real JPEG cut in half: its header is fine, its pixels end early."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- sizes and colours


def test_mixed_sizes_grayscale_and_rgba_are_read_as_rgb_at_one_size(tmp_path):
    root = make_image_folder(tmp_path / "pics", per_class=2, test_per_class=1, size=(32, 32))
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "pics/train/cat/gray.png")
    Image.fromarray(rgba).save(tmp_path / "pics/train/dog/rgba.png")
    Image.fromarray(np.full((48, 40, 3), (10, 200, 30), np.uint8)).save(
        tmp_path / "pics/train/dog/big.png"
    )

    source = ImageFolderSource(root)
    assert source.info.image_shape == (32, 32, 3) and source.info.num_train == 7
    images, labels = collect(source.train_examples(np.arange(7)))
    assert images.shape == (7, 32, 32, 3) and images.dtype == np.uint8
    # Fixed order: cat/0000, cat/0001, cat/gray, dog/0000, dog/0001, dog/big, dog/rgba.
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 1])
    # Grayscale: the one channel repeated to three; RGBA: alpha dropped, colour kept.
    np.testing.assert_array_equal(images[2], np.repeat(gray[..., None], 3, axis=-1))
    np.testing.assert_array_equal(images[6], rgba[..., :3])
    # 48x40 resized to 32x32: a uniform image stays its colour.
    np.testing.assert_array_equal(images[5], np.broadcast_to([10, 200, 30], (32, 32, 3)))


# ---------------------------------------------------------------- unreadable files


@pytest.fixture
def damaged_folder(tmp_path):
    """8 train + 4 test images, of which 2 train and 1 test cannot be decoded.

    The first training image is one of them, so the image size must come
    from a readable file.
    """
    root = make_image_folder(tmp_path / "pics", per_class=4, test_per_class=2)
    pics = tmp_path / "pics"
    (pics / "train/cat/0000.png").write_bytes(b"")  # zero bytes
    truncated_jpeg(pics / "train/dog/broken.jpg")
    (pics / "test/dog/empty.png").write_bytes(b"")
    bad = [pics / "train/cat/0000.png", pics / "train/dog/broken.jpg", pics / "test/dog/empty.png"]
    return root, [str(p) for p in bad]


def test_without_the_flag_an_unreadable_file_is_named_with_the_way_out(damaged_folder):
    root, bad = damaged_folder
    with pytest.raises(DataError) as caught:
        ImageFolderSource(root)
    message = str(caught.value)
    assert bad[0] in message and "--skip-bad-images" in message and "\n" not in message


def test_skip_bad_images_leaves_them_out_of_both_splits(damaged_folder):
    root, bad = damaged_folder
    notes = []
    source = open_source(data_dir=root, skip_bad_images=True, log=notes.append)

    assert source.skipped_images == tuple(bad)
    assert (source.info.num_train, source.info.num_test) == (9 - 2, 5 - 1)
    assert source.info.image_shape == (32, 32, 3)
    # Every remaining file reads, and labels still match their folders.
    _, labels = collect(source.train_examples(np.arange(source.info.num_train)))
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 1])
    _, test_labels = collect(source.test_examples())
    np.testing.assert_array_equal(test_labels, [0, 0, 1, 1])

    assert len(notes) == 1
    assert notes[0].startswith("skipped 3 image files that cannot be decoded (2 train, 1 test")
    assert all(path in notes[0] for path in bad)


def test_skip_bad_images_with_nothing_readable_in_a_split_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "pics", per_class=1, test_per_class=1)
    for path in (tmp_path / "pics" / "test").rglob("*.png"):
        path.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"no image in .*pics/test can be decoded"):
        ImageFolderSource(root, skip_bad_images=True)


def test_cli_without_the_flag_names_the_file_and_the_flag(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "pics", per_class=3, test_per_class=1)
    truncated_jpeg(tmp_path / "pics/train/dog/broken.jpg")
    line = one_error_line(capsys, ["fit", "vgg8", "--data-dir", "pics", "--epochs", "1"])
    assert "broken.jpg" in line and "--skip-bad-images" in line
    assert not (tmp_path / "runs").exists()


def test_cli_fit_with_skip_bad_images_trains_and_records_the_files(tmp_path):
    make_image_folder(tmp_path / "pics", per_class=6, test_per_class=2)
    bad = truncated_jpeg(tmp_path / "pics/train/dog/broken.jpg")
    out = run_cli(
        "fit", "vgg8", "--data-dir", "pics", "--skip-bad-images", "--epochs", "1",
        "--width-multiplier", "0.125", "--limit-train", "8", "--batch-size", "4",
        "--run-dir", "run",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "skipped 1 image file that cannot be decoded (1 train, 0 test" in out.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["skip_bad_images"] is True
    assert config["resolved"]["skipped_images"] == [str(bad)]


# ---------------------------------------------------------------- labels


def test_cifar_binary_label_out_of_range_names_file_and_record(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, arrays = make_cifar_binary(tmp_path, n_train_per_batch=6, as_tar=False)
    labels = arrays["train_labels"][6:12].copy()
    labels[3] = 12
    with open(os.path.join(path, "data_batch_2.bin"), "wb") as f:
        f.write(cifar_records(arrays["train_images"][6:12], labels))
    line = one_error_line(capsys, ["fit", "vgg8", "--data-dir", path, "--epochs", "1"])
    assert "data_batch_2.bin record 3 has label 12" in line and "10 classes" in line
    assert not (tmp_path / "runs").exists()


class Arrays(ArraySource):
    def __init__(self, train_labels, test_labels, classes=3):
        self._train_labels = np.asarray(train_labels, np.int32)
        self._test_labels = np.asarray(test_labels, np.int32)
        self._train_images = np.zeros((len(train_labels), 4, 4, 3), np.uint8)
        self._test_images = np.zeros((len(test_labels), 4, 4, 3), np.uint8)
        self.info = SourceInfo("arrays", tuple("abc"[:classes]), len(train_labels), len(test_labels), (4, 4, 3))


@pytest.mark.parametrize(
    "train, test, match",
    [
        ([0, 1, 3, 2], [0], r"arrays training split example 2 has label 3, outside .*0\.\.2"),
        ([0, 1], [2, -1, 0, 5], r"arrays test split example 1 \(and 1 more\) has label -1"),
    ],
)
def test_array_source_labels_outside_the_classes_are_an_error(train, test, match):
    source = Arrays(train, test)
    with pytest.raises(DataError, match=match):
        source.train_examples(np.arange(len(train)))
    with pytest.raises(DataError, match=match):
        source.test_examples()
    assert len(collect(Arrays([0, 1, 2], [2]).test_examples())[1]) == 1  # in range: fine


def test_labels_read_lazily_are_checked_in_the_graph():
    class Lazy(DataSource):
        info = SourceInfo("lazy", ("a", "b", "c"), 0, 3, (4, 4, 3))

        def test_examples(self):
            ds = tf.data.Dataset.from_tensor_slices((tf.zeros((3, 4, 4, 3), tf.uint8), [0, 7, 1]))
            return ds.map(lambda x, y: (x, checked_label(y, self.info.num_classes)))

    source = Lazy()
    with pytest.raises(DataError, match=r"^lazy has label 7, outside the class range 0\.\.2 \(3 classes\)"):
        read_guard(source, collect, source.test_examples())


def test_read_guard_leaves_errors_of_the_computation_alone():
    # The AddN of unequal replica shares (Keras' build under MirroredStrategy) was once reported
    # as "could not read the data": an op that is not the input pipeline's keeps its own error.
    def step():
        return tf.add_n([tf.zeros([4, 2]), tf.zeros([3, 2])])

    with pytest.raises(tf.errors.InvalidArgumentError, match="AddN"):
        read_guard(Arrays([0], [0]), step)
