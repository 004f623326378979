"""Shared test helpers that write real data sets to disk.

Each helper is a plain function (`from conftest import make_image_folder`)
and also a pytest fixture of the same name that returns the function:

    def test_x(tmp_path, make_image_folder):
        root = make_image_folder(tmp_path / "pics")
"""

import io
import os
import tarfile

import numpy as np
import pytest

from kerascnn.runtime.quiet import import_tensorflow_quietly

# PyTorch's OpenMP threads (the reference of the benchmarks' tests, the torchvision layouts) sleep
# rather than spin while they wait. Beside the other xdist worker on a 2-core host a spinning
# thread holds a core the other thread of its parallel region needs, and every op pays a time
# slice: a resnet18 training step at 16x16 took 3.5 s instead of 0.15 s. Set before PyTorch is
# imported (here, in each worker; the subprocesses the tests start inherit it); timings are never
# asserted.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Each pytest-xdist worker imports TensorFlow here; without this its CUDA
# probes would print to the terminal after the summary line.
import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402

from kerascnn.data.cifar_binary import CIFAR10_CLASSES  # noqa: E402  (the archive's label order)

# Two logical CPU devices for the multi-replica tests (MirroredStrategy on a
# machine without GPUs). TensorFlow accepts this only before its runtime
# starts, so it happens here, before any test runs an op; single-device
# code keeps using /cpu:0 and the shared thread pools.
REPLICA_CPUS = 2
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration() for _ in range(REPLICA_CPUS)],
)

# The modules that take longest, all their tests together (seconds on the 2-core Zen 4 host,
# `pytest --durations=0`, 2026-12-03: from 136 s down to 18 s), run first. pyproject.toml's
# `--dist=loadscope --no-loadscope-reorder` hands whole modules to the workers in collection
# order, one as the last is nearly done, so longest first lets the many short modules (the rest,
# alphabetical) fill in at the end and both workers finish together. If this list goes stale,
# at worst one long module starts late and that worker finishes a little after the other.
LONGEST_FIRST = (
    "test_study_smoke.py", "test_models.py", "test_battery_interrupt.py", "test_weights_torchvision.py",
    "test_benchmarks_vs_torch.py", "test_training_faults.py", "test_runtime_strategies.py",
    "test_tuning_search.py", "test_weights_pretrained.py", "test_tuning_distributed.py",
    "test_training_fit.py", "test_serving_export.py", "test_real_cifar.py", "test_runtime_model_parallel.py",
    "test_battery_files.py", "test_cli.py", "test_benchmarks_fused_batchnorm.py", "test_benchmarks_throughput.py",
    "test_serving_tflite.py", "test_runtime_multiworker.py", "test_analysis_reports.py", "test_models_resnet.py",
    "test_battery_disk.py", "test_training_resume.py", "test_data_augment.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "gif": "GIF"}


def class_colour(index):
    """A distinct, saturated RGB colour for class `index`."""
    palette = np.array(
        [
            [220, 40, 40],
            [40, 200, 60],
            [50, 70, 230],
            [230, 210, 40],
            [200, 50, 210],
            [40, 210, 220],
            [250, 140, 20],
            [120, 120, 120],
            [20, 20, 20],
            [250, 250, 250],
        ],
        dtype=np.int64,
    )
    return palette[index % len(palette)]


def fill_weights_with_nan(model):
    """Every floating-point weight of `model` set to NaN: a diverged model, on any CPU."""
    for w in model.weights:
        if "float" in str(w.dtype):
            w.assign(tf.fill(w.shape, float("nan")))


def make_image_folder(
    root, classes=("cat", "dog"), per_class=4, test_per_class=2, size=(32, 32), fmt="png", seed=0
):
    """Write `root/{train,test}/<class>/<i>.<fmt>` with PIL and return `root`.

    Each image is its class colour (see `class_colour`) plus noise, so the
    classes are easy to tell apart. `size` is (height, width).
    """
    from PIL import Image

    root = os.fspath(root)
    rng = np.random.default_rng(seed)
    height, width = size
    for split, count in (("train", per_class), ("test", test_per_class)):
        for label, name in enumerate(classes):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                pixels = class_colour(label) + rng.integers(-20, 21, size=(height, width, 3))
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                image.save(os.path.join(folder, f"{i:04d}.{fmt}"), format=_PIL_FORMATS[fmt.lower()])
    return root


def cifar_records(images, labels):
    """Bytes of CIFAR-10 binary records: per image 1 label byte, then R, G, B planes."""
    images = np.asarray(images, dtype=np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    return np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1).tobytes()


def make_cifar_binary(
    root, n_train_per_batch=20, n_test=20, as_tar=True, class_names=CIFAR10_CLASSES, seed=0
):
    """Write a CIFAR-10 binary data set under `root`; return `(path, arrays)`.

    `path` is `root/cifar-10-binary.tar.gz` (members under
    `cifar-10-batches-bin/`, written from memory) when `as_tar`, else the
    folder `root/cifar-10-batches-bin`. `arrays` holds what was written:
    `train_images` (5 * n_train_per_batch, 32, 32, 3) uint8 in batch order,
    `train_labels`, `test_images`, `test_labels` (int32) and `class_names`.
    Pixels are random; labels cycle through the classes.
    """
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_train = 5 * n_train_per_batch
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 32, 32, 3), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % len(class_names)).astype(np.int32),
        "test_images": rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8),
        "test_labels": ((np.arange(n_test) * 3 + 1) % len(class_names)).astype(np.int32),
        "class_names": tuple(class_names),
    }
    files = {}
    for b in range(5):
        part = slice(b * n_train_per_batch, (b + 1) * n_train_per_batch)
        files[f"data_batch_{b + 1}.bin"] = cifar_records(
            arrays["train_images"][part], arrays["train_labels"][part]
        )
    files["test_batch.bin"] = cifar_records(arrays["test_images"], arrays["test_labels"])
    # Blank lines on purpose: the real file ends with some.
    files["batches.meta.txt"] = ("\n".join(class_names) + "\n\n").encode()

    if as_tar:
        path = os.path.join(root, "cifar-10-binary.tar.gz")
        with tarfile.open(path, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        path = os.path.join(root, "cifar-10-batches-bin")
        os.makedirs(path, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(path, name), "wb") as f:
                f.write(data)
    return path, arrays


@pytest.fixture(name="make_image_folder")
def _make_image_folder_fixture():
    return make_image_folder


@pytest.fixture(name="make_cifar_binary")
def _make_cifar_binary_fixture():
    return make_cifar_binary


@pytest.fixture
def small_synthetic_test_set(monkeypatch):
    """The generated dataset with 100 test images instead of 500 (a partial last batch either way).

    For tests whose runs score every test image (plain, mirrored, shifted) and assert nothing that
    depends on how many there are: most of a tiny run's compute at 500 images.
    """
    import functools

    from kerascnn.data import synthetic

    monkeypatch.setattr(synthetic, "SyntheticSource", functools.partial(synthetic.SyntheticSource, num_test=100))
