"""Images per second of the training input pipeline, batched vs per-image.

    python benchmarks/pipeline.py [--images 50000] [--batches 150] [--repeats 3] [--train-steps 3]

CIFAR-10 training images (from $KERASCNN_CIFAR10_DIR, else the synthetic set)
are decoded once into memory. Then, in the same run:

1. the product's pipeline (`kerascnn.data.pipeline.training_batches`):
   shuffle, batch 128, `cifar` preset (reflect pad 4, random crop, flip) on
   whole batches, PCA colour jitter, normalise, one-hot;
2. the same without PCA jitter, for its share of the time;
3. a naive per-image version of the same augmentations (tf.image.random_crop,
   random_flip_left_right, a per-image PCA shift, normalise, one-hot in a
   per-image `map`, then batch), given the same parallelism (AUTOTUNE);
4. the training throughput of `alexnet_cifar` at batch 128 (the product's
   train step, `benchmarks/epoch_time.py`), which the pipeline must outrun.

Each pipeline is drained for `--batches` batches after a warm-up of 10, the
median of `--repeats` timings is reported, and the ratios are printed.
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from epoch_time import time_model  # noqa: E402
from kerascnn.data.augment import CIFAR_PAD, Augmentation  # noqa: E402
from kerascnn.data.pipeline import in_memory_batches, training_batches  # noqa: E402
from kerascnn.data.preprocessing import Preprocessing  # noqa: E402
from kerascnn.data.choose_source import open_source  # noqa: E402
from kerascnn.data.statistics import pca_of, pixel_moments  # noqa: E402

BATCH = 128


def load_in_memory(source, limit):
    n = min(limit, source.info.num_train)
    ds = source.train_examples(np.arange(n)).batch(1024)
    images, labels = zip(*ds.as_numpy_iterator())
    return np.concatenate(images), np.concatenate(labels)


def batched_pipeline(x, y, augmentation, preprocessing, num_classes):
    batches = in_memory_batches(x, y, BATCH, seed=0, drop_remainder=True)
    return training_batches(batches, augmentation, preprocessing, num_classes)


def per_image_pipeline(x, y, pca, sigma, preprocessing, num_classes):
    """The same augmentations written the usual per-example way."""
    eigenvalues = np.asarray(pca["eigenvalues"], np.float32)
    projection = tf.constant(np.sqrt(eigenvalues)[:, None] * np.asarray(pca["eigenvectors"], np.float32).T)
    mean = tf.constant(preprocessing.mean, tf.float32)
    std = tf.constant(preprocessing.std, tf.float32)
    size = x.shape[1:3]

    def augment(image, label):
        image = tf.cast(image, tf.float32)
        image = tf.pad(image, [[CIFAR_PAD, CIFAR_PAD], [CIFAR_PAD, CIFAR_PAD], [0, 0]], mode="REFLECT")
        image = tf.image.random_crop(image, (*size, 3))
        image = tf.image.random_flip_left_right(image)
        alpha = tf.random.normal((1, 3), stddev=sigma)
        image = tf.clip_by_value(image + tf.matmul(alpha, projection)[0], 0.0, 255.0)
        return (image - mean) / std, tf.one_hot(label, num_classes)

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0, reshuffle_each_iteration=True)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def images_per_second(ds, batches, repeats):
    iterator = iter(ds.repeat())
    for _ in range(10):  # warm-up: tracing, thread pools, autotuning
        next(iterator)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rates.append(batches * BATCH / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000, help="training images held in memory")
    parser.add_argument("--batches", type=int, default=150, help="batches per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=3, help="alexnet_cifar steps per timing")
    args = parser.parse_args(argv)

    cifar = os.environ.get("KERASCNN_CIFAR10_DIR")
    source = open_source(data_dir=cifar) if cifar else open_source(dataset="synthetic")
    x, y = load_in_memory(source, args.images)
    moments = pixel_moments(x)
    pca = pca_of(moments)
    preprocessing = Preprocessing(x.shape[1:3], tuple(moments.mean), tuple(moments.std))
    num_classes = source.info.num_classes
    with_pca = Augmentation("cifar", x.shape[1:3], pca=pca)
    without_pca = Augmentation("cifar", x.shape[1:3])

    rates = {
        "batched, cifar + PCA jitter (the product)": images_per_second(
            batched_pipeline(x, y, with_pca, preprocessing, num_classes), args.batches, args.repeats
        ),
        "batched, cifar without PCA jitter": images_per_second(
            batched_pipeline(x, y, without_pca, preprocessing, num_classes), args.batches, args.repeats
        ),
        "per-image map, cifar + PCA jitter": images_per_second(
            per_image_pipeline(x, y, pca, with_pca.pca_sigma, preprocessing, num_classes),
            args.batches,
            args.repeats,
        ),
    }
    step, _ = time_model("alexnet_cifar", source, BATCH, args.train_steps, args.repeats)
    train_rate = BATCH / step

    product = rates["batched, cifar + PCA jitter (the product)"]
    print(
        f"data: {source.info.name}, {len(x)} training images in memory; batch {BATCH}; "
        f"{os.cpu_count()} CPU cores; TensorFlow {tf.__version__}"
    )
    print("| pipeline | images/s |")
    print("|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |")
    print(f"| alexnet_cifar training step (reference) | {train_rate:,.1f} |")
    print()
    print(f"batched / per-image: {product / rates['per-image map, cifar + PCA jitter']:.1f}x")
    print(f"batched pipeline / alexnet_cifar training: {product / train_rate:.0f}x")
    extra = rates["batched, cifar without PCA jitter"] / product - 1
    print(f"PCA jitter adds {100 * extra:.1f}% to the pipeline's time per image")


if __name__ == "__main__":
    main()
