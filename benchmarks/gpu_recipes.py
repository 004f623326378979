"""Issues 16 and 19 on a GPU in one run: recipes trained to accuracy on CIFAR-10, and speed against PyTorch.

    KERAS_BACKEND=jax python benchmarks/gpu_recipes.py --data DIR_OR_TAR_GZ --out OUT \\
        --torch --torch-train resnet18:40 \\
        --plan googlenet_cifar:18:250 alexnet_cifar:60:80:cutout=8 vgg16_bn:60:110:cutout=8

Written for the GPU machine this project is sometimes lent for 15 minutes:
it has JAX and PyTorch but no TensorFlow, whose wheel (over 500 MB) cannot
travel there. Keras 3 runs the product's networks on its JAX backend, so
this script trains them with the product's own build path,
`kerascnn.training.build.build_models`: the registered builder, the
recipe's optimizer and one-cycle schedule, its coupled L2 decay, batch-norm
treatment, label smoothing and auxiliary losses, compiled by XLA, in
mixed_bfloat16. What it replaces is the tf.data pipeline: the `cifar`
augmentation runs on the device in JAX with the same definitions
(`kerascnn.data.augment`: a random crop of the image padded by
`translate` pixels, reflected or zero, a horizontal flip with probability
1/2, then, after normalising with the training set's per-channel mean and
standard deviation, cutout's zeroed square centred uniformly over the image
and clipped at its border), and every epoch uses floor(50,000 / batch)
full batches of a fresh permutation (one compiled step shape), handed to
`model.fit` as device arrays (`--host-arrays`: as host copies, which cost
0.35-0.5 s of a 1.6-2.1 s epoch on the H200; benchmarks/NOTES.md 33).

Each plan entry is `model[:max_epochs[:seconds]][:NAME=VALUE...]`, the
NAME=VALUE parts changing single settings of the recipe as
time_to_accuracy.py's `--set` does. The model is built for
`max_epochs`, its compiled step is timed on a few real batches, and the
epochs are cut to what fits its seconds (then built again for that budget:
a one-cycle schedule is fixed by its length) before training starts from
the restored initial weights; the test set is scored after every epoch
(outside the timed training) and, after the last, with airbench's flip and
flip-and-shift test-time views (`kerascnn.serving.tta`). All 50,000
training images, all 10,000 test images, the last epoch's model.

`--torch` first times PyTorch at its best on the same GPU (bf16 autocast,
channels_last, cuDNN autotuning; and plain float32), with the reference
networks of `benchmarks/torch_reference.py`, at each plan entry's batch
size, `--torch-repeats` times each (the median reported), for issue 19's
table beside the Keras step times measured here (the median of five).
`--torch-train MODEL:EPOCHS[:NAME=VALUE...]` then trains the same network
with the same resolved recipe on the same images in PyTorch
(`benchmarks/torch_recipe.py`): the calibration that says whether a
shortfall against a published figure is kerascnn's or the data's. Both run
in a child process before JAX takes its share of the GPU's memory.

Everything goes to OUT/gpu_recipes.json (PyTorch's part also to
OUT/torch.json), rewritten after every epoch, so a run cut short keeps
what it measured.
"""

import argparse
import io
import json
import os
import pathlib
import platform
import subprocess
import sys
import tarfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.errors import DataError, script_exit_status  # noqa: E402 (after the path)
from kerascnn.serving.test_time_views import VIEW_SHIFTS, combine_views  # noqa: E402

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --- data -------------------------------------------------------------------------------------


def _decode(data):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)


def _files(source):
    """[(split, class, name, bytes)] of every JPEG under `source`, a cifar10-jpeg folder or its .tar.gz."""
    source = pathlib.Path(source)
    found = []
    if source.is_dir():
        for path in source.glob("*/*/*.jpg"):
            found.append((path.parts[-3], path.parts[-2], path.name, path.read_bytes()))
        return found
    with tarfile.open(source) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and member.name.endswith(".jpg") and len(parts) >= 3:
                found.append((parts[-3], parts[-2], parts[-1], tar.extractfile(member).read()))
    return found


def load_cifar(source, limit_per_class=None):
    """{"train": (uint8 [N, 32, 32, 3], int labels), "test": ...}, in (class, file name) order."""
    by_split = {"train": [], "test": []}
    for split, cls, name, data in _files(source):
        if split in by_split and cls in CLASSES:
            by_split[split].append((CLASSES.index(cls), name, data))
    out = {}
    for split, items in by_split.items():
        items.sort(key=lambda t: (t[0], t[1]))
        if limit_per_class:  # the first files of each class
            seen = {}
            items = [t for t in items if seen.setdefault(t[0], []).append(t) or len(seen[t[0]]) <= limit_per_class]
        if not items:
            raise DataError(f"no {split} images under {source}: expected cifar10-jpeg/{split}/<class>/*.jpg")
        out[split] = (np.stack([_decode(t[2]) for t in items]), np.array([t[0] for t in items], np.int32))
    return out


def with_channel_statistics(data):
    """`data` with "mean" and "std": the training images' per-channel statistics on the 0-255 scale."""
    train_x = data["train"][0]
    data["mean"] = train_x.reshape(-1, 3).mean(0)
    data["std"] = train_x.reshape(-1, 3).std(0)
    return data


# --- augmentation and test-time views, on the device ---------------------------------------------


def make_augment(mean, std, translate, pad_mode, cutout, flip="random", seed=0):
    """A jitted (key, uint8 images [N, h, w, 3], epoch) -> (normalised float32 views, permutation) of the `cifar` preset.

    `flip` as the product's `--flip`: "alternating" mirrors a `seed`ed half of the
    images in epoch 0 and each image the other way round in every epoch after
    (kerascnn.data.augment.alternating_flips; a JAX permutation stands in for
    TensorFlow's index_shuffle, so the half differs from a TensorFlow run's).
    """
    import jax
    import jax.numpy as jnp

    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)

    @jax.jit
    def augment(key, images, epoch=0):
        n, h, w, c = images.shape
        k_order, k_shift, k_flip, k_cut = jax.random.split(key, 4)
        order = jax.random.permutation(k_order, n)
        x = images[order]
        if translate:
            t = translate
            padded = jnp.pad(x, ((0, 0), (t, t), (t, t), (0, 0)), mode="reflect" if pad_mode == "reflect" else "constant")
            offsets = jax.random.randint(k_shift, (n, 2), 0, 2 * t + 1)
            x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c)))(padded, offsets)
        if flip == "alternating":
            first = jax.random.permutation(jax.random.PRNGKey(seed), n) < n // 2  # by image id
            mirror = first[order] ^ (epoch % 2 == 1)
        elif flip == "none":
            mirror = jnp.zeros((n,), bool)
        else:
            mirror = jax.random.bernoulli(k_flip, 0.5, (n,))
        x = jnp.where(mirror[:, None, None, None], x[:, :, ::-1, :], x)
        x = (x.astype(jnp.float32) - mean) / std
        if cutout:
            centre = jnp.floor(jax.random.uniform(k_cut, (n, 2)) * jnp.array([h, w], jnp.float32)).astype(jnp.int32)
            top, left = centre[:, 0] - cutout // 2, centre[:, 1] - cutout // 2
            rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
            in_rows = (rows >= top[:, None]) & (rows < top[:, None] + cutout)
            in_cols = (cols >= left[:, None]) & (cols < left[:, None] + cutout)
            x = jnp.where((in_rows[:, :, None] & in_cols[:, None, :])[..., None], 0.0, x)
        return x, order

    return augment


def shifted(images, dy, dx):
    """`images` moved `dy` down and `dx` right, the uncovered edge reflected (kerascnn.serving.tta.shift)."""
    py, px = abs(dy), abs(dx)
    padded = np.pad(images, ((0, 0), (py, py), (px, px), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    return padded[:, py - dy:py - dy + h, px - dx:px - dx + w]


def softmax(logits):
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def tta_accuracies(predict, images, labels):
    """(plain, flip, flip-and-shift) accuracy: the six views of kerascnn.serving.tta, combined as there."""
    views = [shifted(images, dy, dx) for dy, dx in VIEW_SHIFTS]
    views += [v[:, :, ::-1] for v in views]
    combined = combine_views([softmax(predict(v)) for v in views])
    return tuple(float(np.mean(p.argmax(1) == labels)) for p in combined)


# --- the recipes -------------------------------------------------------------------------------


def parse_plan(entries):
    """[(name, max_epochs, seconds, overrides)] of `model[:max_epochs[:seconds]][:NAME=VALUE...]` entries.

    The NAME=VALUE parts change single settings of the recipe as time_to_accuracy.py's
    `--set` does (`vgg16_bn:60:120:cutout=8`); an empty field keeps its default
    (`resnet18::100` has no epoch cap given).
    """
    plan = []
    for entry in entries:
        name, *rest = entry.split(":")
        sets = [part for part in rest if "=" in part]
        rest = [part for part in rest if "=" not in part]
        epochs = int(rest[0]) if rest and rest[0] else None
        seconds = float(rest[1]) if len(rest) > 1 and rest[1] else None
        plan.append((name, epochs, seconds, sets))
    return plan


def entry_label(name, sets):
    """The report's key of a plan entry: the model, with its overrides when it has any."""
    return "+".join([name, *sets])


def resolve(name, recipe, epochs, seed, sets):
    """The `RunConfig` of a plan entry: the recipe at `epochs`, its NAME=VALUE overrides applied."""
    from kerascnn.config import RunConfig, parse_overrides

    settings, options = parse_overrides(sets)
    return RunConfig.from_flags(name, recipe=recipe, epochs=epochs, seed=seed, model_options=options, **settings)


def fitting_epochs(max_epochs, seconds_left, epoch_s, eval_s, final_s):
    """The most epochs, at most `max_epochs`, whose training and per-epoch testing fit `seconds_left`."""
    if seconds_left is None:
        return max_epochs
    return int(max(0, min(max_epochs, (seconds_left - final_s) // (epoch_s + eval_s))))


class Recipe:
    """One plan entry: the model built by the product's path, probed, trained and tested."""

    def __init__(self, name, recipe, epochs, seed, data, report, out, eval_batch, host_arrays=False, sets=()):
        self.name, self.data, self.report, self.out, self.eval_batch = name, data, report, out, eval_batch
        self.host_arrays, self.sets, self.label = host_arrays, list(sets), entry_label(name, sets)
        # Resolved now so that a bad model, recipe or setting stops the script before any model
        # trains; build() resolves it again at the epochs the deadline leaves.
        self.config = resolve(name, recipe, epochs, seed, self.sets)
        self.seed = seed
        self.probe_repeats = 5

    def build(self, epochs):
        import keras

        from kerascnn.training.build import build_models

        keras.backend.clear_session()
        keras.utils.set_random_seed(self.seed)
        self.config = resolve(self.name, self.config.recipe, epochs, self.seed, self.sets)
        batch = self.config.data.batch_size
        self.steps = len(self.data["train"][0]) // batch
        _, self.model, self.inference = build_models(
            self.name, len(CLASSES), (32, 32, 3), self.config.model_options, self.config.optim, self.steps,
            epochs, jit=True,
        )
        self.initial = self.model.get_weights()

    def reset(self):
        """The initial weights back and the optimizer's state (iterations, momenta) at zero: a fresh start."""
        self.model.set_weights(self.initial)
        for variable in self.model.optimizer.variables:
            if "learning_rate" not in variable.path:
                variable.assign(np.zeros(variable.shape, variable.dtype))

    def epoch_data(self, key, epoch=0):
        import jax

        images, labels = self.data["train_device"]
        x, order = self.augment(key, images, epoch)
        batch = self.config.data.batch_size
        used = self.steps * batch
        y = jax.nn.one_hot(labels[order][:used], len(CLASSES))
        x = x[:used]
        x.block_until_ready()
        if self.host_arrays:  # the 2026-12-04 lease's path: a 614 MB copy to the host, and back by fit
            return np.asarray(x), np.asarray(y)
        # Keras slices JAX arrays where they are (array_slicing's JAX sliceable): no host round trip.
        return x, y

    def predict(self, x):
        return self.inference.predict(x, batch_size=self.eval_batch, verbose=0).astype(np.float32)

    def run(self, max_epochs, seconds):
        import jax

        d = self.config.data
        t_start = time.perf_counter()
        self.build(max_epochs)
        entry = self.report["recipes"].setdefault(self.label, {"model": self.name, "overrides": self.sets})
        self.augment = make_augment(self.data["mean"], self.data["std"], d.translate if d.augment == "cifar" else 0,
                                    d.pad_mode, d.cutout, d.flip, self.seed)
        key = jax.random.PRNGKey(self.seed)
        x, y = self.epoch_data(jax.random.fold_in(key, 10_000))
        probe = min(self.steps, 20) * d.batch_size
        timings = []
        for _ in range(1 + self.probe_repeats):  # the first call compiles the step; the others time it
            t = time.perf_counter()
            self.model.fit(x[:probe], y[:probe], batch_size=d.batch_size, epochs=1, shuffle=False, verbose=0)
            timings.append(time.perf_counter() - t)
        step_s = float(np.median(timings[1:])) / (probe // d.batch_size)  # issue 19's tables take medians
        test_x, test_y = self.data["test_norm"], self.data["test"][1]
        t = time.perf_counter()
        self.predict(test_x)  # compiles the forward pass
        predict_compile_s = time.perf_counter() - t
        t = time.perf_counter()
        self.predict(test_x)
        eval_s = time.perf_counter() - t
        epoch_s = step_s * self.steps * 1.15  # and the augmentation, transfers and fit's own work
        left = None if seconds is None else seconds - (time.perf_counter() - t_start)
        epochs = fitting_epochs(max_epochs, left, epoch_s, eval_s, final_s=7 * eval_s)
        if epochs < max_epochs and left is not None:  # a second build and compile must fit too
            epochs = fitting_epochs(max_epochs, left - timings[0] - predict_compile_s, epoch_s, eval_s, 7 * eval_s)
        entry.update({
            "recipe": self.config.recipe, "batch_size": d.batch_size, "steps_per_epoch": self.steps,
            "compile_and_first_probe_s": round(timings[0], 2), "probe_step_ms": round(1e3 * step_s, 3),
            "probe_step_ms_all": [round(1e3 * t / (probe // d.batch_size), 3) for t in timings[1:]],
            "keras_images_per_s": round(d.batch_size / step_s, 1), "predict_compile_s": round(predict_compile_s, 2),
            "test_pass_s": round(eval_s, 3), "max_epochs": max_epochs, "seconds": seconds, "epochs": epochs,
        })
        print(f"{self.label} (budget {seconds if seconds is None else round(seconds)} s): compile+probe {timings[0]:.1f} s, step {1e3 * step_s:.2f} ms "
              f"({d.batch_size / step_s:,.0f} images/s), test pass {eval_s:.2f} s -> {epochs} epochs", flush=True)
        if epochs < 2:
            entry["skipped"] = f"{epochs} epochs fit in {seconds} s"
            return
        if epochs != max_epochs:
            self.build(epochs)  # the one-cycle schedule is fixed by its length: a fresh build for this budget
        else:
            self.reset()
        entry["config"] = self.config.to_dict()
        entry["epochs_log"] = rows = []
        trained = 0.0
        for epoch in range(epochs):
            t = time.perf_counter()
            x, y = self.epoch_data(jax.random.fold_in(key, epoch), epoch)
            augment_s = time.perf_counter() - t
            history = self.model.fit(x, y, batch_size=d.batch_size, epochs=epoch + 1, initial_epoch=epoch,
                                     shuffle=False, verbose=0).history
            epoch_total = time.perf_counter() - t
            trained += epoch_total
            accuracy = float(np.mean(self.predict(test_x).argmax(1) == test_y))
            rows.append({"epoch": epoch + 1, "train_s": round(epoch_total, 3), "augment_s": round(augment_s, 3),
                         "cumulative_train_s": round(trained, 2), "test_accuracy": accuracy,
                         "train_accuracy": float(history["accuracy"][-1]), "loss": float(history["loss"][-1])})
            print(f"  epoch {epoch + 1}/{epochs}: {epoch_total:.2f} s (augment {augment_s:.2f}), "
                  f"test {100 * accuracy:.2f}%, train {100 * history['accuracy'][-1]:.2f}%", flush=True)
            write(self.out, self.report)
        plain, flip, flip_shift = tta_accuracies(self.predict, test_x, test_y)
        entry.update({"test_accuracy": plain, "flip_accuracy": flip, "flip_shift_accuracy": flip_shift,
                      "train_s": round(trained, 2), "wall_s": round(time.perf_counter() - t_start, 2)})
        print(f"{self.label}: {epochs} epochs, {trained:.1f} s training: {100 * plain:.2f}% plain, "
              f"{100 * flip:.2f}% flips, {100 * flip_shift:.2f}% flips and shifts", flush=True)
        write(self.out, self.report)


# --- PyTorch at its best, for issue 19 ------------------------------------------------------------


def torch_rate(ref, name, batch, mode, device, steps, warmup):
    """Images/s of one training configuration of PyTorch's reference `name` (SGD, Nesterov, decay 5e-4)."""
    import torch

    torch.manual_seed(0)
    fmt = torch.channels_last if "channels_last" in mode else torch.contiguous_format
    model = ref.create(name).to(device).to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32, device=device).to(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled="bf16" in mode):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def say(line):
    print(line, flush=True)


def torch_throughput(entries, steps, warmup, repeats=5, log=say):
    """{"images_per_s": {model: {batch: {mode: median images/s}}}, "runs": {... every repeat}} of the references.

    benchmarks/torch_reference.py's networks on the GPU (or CPU), each mode timed
    `repeats` times, the modes interleaved so that a drift of the clock or the
    machine falls on both alike.
    """
    import torch
    import torch_reference

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True  # PyTorch at its best: cuDNN picks each convolution's fastest kernel
    table, runs = {}, {}
    for name, batch in entries:
        rates = {mode: [] for mode in ("float32", "channels_last+bf16")}
        for _ in range(repeats):
            for mode in rates:
                rates[mode].append(round(torch_rate(torch_reference, name, batch, mode, device, steps, warmup), 1))
        for mode, values in rates.items():
            table.setdefault(name, {}).setdefault(str(batch), {})[mode] = float(np.median(values))
            runs.setdefault(name, {}).setdefault(str(batch), {})[mode] = values
            log(f"torch {name} batch {batch} {mode}: median {np.median(values):,.0f} images/s of {values}")
    return {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
            "torch": torch.__version__, "repeats": repeats, "images_per_s": table, "runs": runs}


def torch_training(entries, recipe, seed, data, log=say, on_result=None):
    """{label: benchmarks/torch_recipe.py's result} for `model:epochs[:NAME=VALUE...]` entries: the calibration.

    Each entry is trained by PyTorch with the recipe kerascnn resolves for it
    (the same RunConfig as a plan entry's), on the same images.
    """
    import torch_recipe

    results = {}
    for name, epochs, _, sets in parse_plan(entries):
        config = resolve(name, recipe, epochs, seed, sets)
        settings = torch_recipe.settings_of(config)
        label = entry_label(name, sets)
        log(f"torch training {label}: {epochs} epochs of the {config.recipe} recipe")
        try:
            results[label] = torch_recipe.train(name, settings, config.model_options, data, epochs, seed, log=log)
            r = results[label]
            log(f"torch {label}: {epochs} epochs, {r['train_s']:.1f} s training: {100 * r['test_accuracy']:.2f}% "
                f"plain, {100 * r['flip_accuracy']:.2f}% flips")
        except Exception as e:  # one entry's failure must not cost the others their lease time
            results[label] = {"failed": f"{type(e).__name__}: {e}"[:500]}
            log(f"torch {label} FAILED: {results[label]['failed']}")
        if on_result:
            on_result(results)
    return results


# --- the run -------------------------------------------------------------------------------------


def environment():
    import jax
    import keras

    info = {"python": sys.version.split()[0], "keras": keras.__version__, "backend": keras.backend.backend(),
            "jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "cpu": platform.processor()}
    try:
        info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                             "--format=csv,noheader"], capture_output=True, text=True,
                                            timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    return info


def write(out, report):
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "gpu_recipes.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out / "gpu_recipes.json")


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="cifar10-jpeg folder or cifar10-jpeg.tar.gz")
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--plan", nargs="+", default=["alexnet_cifar:10"], help="model[:max_epochs[:seconds]] ...")
    p.add_argument("--recipe", default="fast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-batch", type=int, default=1000)
    p.add_argument("--host-arrays", action="store_true",
                   help="hand fit host copies of each epoch's images (the first lease's path) instead of device arrays")
    p.add_argument("--limit-per-class", type=int, default=None, help="a small subset, for trying the script")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds from the start by which every entry should be done (their seconds shrink to fit)")
    p.add_argument("--torch", action="store_true", help="time PyTorch's reference networks first (issue 19)")
    p.add_argument("--torch-steps", type=int, default=30)
    p.add_argument("--torch-repeats", type=int, default=5, help="timings of each PyTorch mode; the median is reported")
    p.add_argument("--torch-train", nargs="+", default=[], metavar="MODEL:EPOCHS[:NAME=VALUE...]",
                   help="train these in PyTorch with the same recipe on the same images first "
                   "(benchmarks/torch_recipe.py: the calibration of kerascnn's accuracy)")
    p.add_argument("--torch-only", type=pathlib.Path, default=None, help=argparse.SUPPRESS)  # the child's data file
    return p.parse_args(argv)


def share(remaining, seconds, time_left):
    """A plan entry's seconds: its share of the time left before the deadline.

    `remaining` is this entry and those after it; the time left is divided in
    proportion to their seconds, so an entry that finished early (its epochs
    capped) leaves its time to the later ones, and one that overran takes it.
    """
    if time_left is None or seconds is None:
        return seconds
    total = sum(entry[2] for entry in remaining if entry[2] is not None) or seconds
    return max(0.0, time_left * seconds / total)


def batch_sizes(plan, recipe):
    """[(model, batch size)] of the plan's entries, each model and batch once."""
    seen = []
    for name, _, _, sets in plan:
        pair = (name, resolve(name, recipe, None, 0, sets).data.batch_size)
        if pair not in seen:
            seen.append(pair)
    return seen


def use_jax():
    """Keras on JAX, with 70% of the GPU for JAX's pool (PyTorch's child keeps room), unless set already.

    Called before Keras is first imported (main's imports are all inside
    functions), not at import time: the test suite imports this module beside
    Keras on TensorFlow, and its child processes inherit the environment.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.7")


def check_one_batch(images, plan, recipe):
    """DataError unless every entry's batch fits in the training images (epochs are whole batches here)."""
    for name, batch in batch_sizes(plan, recipe):
        if images < batch:
            raise DataError(
                f"{name}: {images} training images are fewer than one batch of {batch}; "
                f"give more (--limit-per-class {-(-batch // len(CLASSES))} or more) or a smaller batch "
                f"({name}:EPOCHS::batch_size=N)"
            )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.argv = argv
    plan = parse_plan(args.plan)
    if not pathlib.Path(args.data).exists():
        raise DataError(f"--data {args.data}: no such folder or file; give the cifar10-jpeg folder or its .tar.gz")
    for name, epochs, _, sets in plan + parse_plan(args.torch_train):
        resolve(name, args.recipe, epochs, args.seed, sets)  # a bad model, recipe or setting: one line, exit 2, now
    if args.torch_only:  # the child process: PyTorch alone on the GPU, before JAX takes its memory
        use_jax()
        torch_child(args, plan)
        return
    t0 = time.perf_counter()
    report = {"command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "recipes": {}}
    t = time.perf_counter()
    data = with_channel_statistics(load_cifar(args.data, args.limit_per_class))
    report["data"] = {"train": len(data["train"][0]), "test": len(data["test"][0]), "load_s": round(time.perf_counter() - t, 2)}
    check_one_batch(len(data["train"][0]), plan + parse_plan(args.torch_train), args.recipe)
    use_jax()  # after every check, so that a refused run leaves its caller's environment as it was
    say(f"data: {report['data']}")
    write(args.out, report)
    if args.torch or args.torch_train:
        report.update(run_torch_child(args, data))
        write(args.out, report)
    report["environment"] = environment()
    say(json.dumps(report["environment"]))
    import jax
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")
    data["test_norm"] = ((data["test"][0].astype(np.float32) - data["mean"]) / data["std"]).astype(np.float32)
    data["train_device"] = tuple(jax.device_put(a) for a in data["train"])
    for i, (name, max_epochs, seconds, sets) in enumerate(plan):
        seconds = share(plan[i:], seconds, args.deadline - (time.perf_counter() - t0) if args.deadline else None)
        try:
            Recipe(name, args.recipe, max_epochs, args.seed, data, report, args.out, args.eval_batch,
                   args.host_arrays, sets).run(max_epochs or 10, seconds)
        except Exception as e:  # one model's failure must not cost the others their lease time
            import traceback

            traceback.print_exc()
            report["recipes"].setdefault(entry_label(name, sets), {})["failed"] = f"{type(e).__name__}: {e}"[:500]
        write(args.out, report)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    write(args.out, report)
    print_table(report)


def run_torch_child(args, data):
    """{"torch": throughput, "torch_training": calibration} from a child process running PyTorch alone.

    A child, so that PyTorch has the GPU to itself and gives its memory back
    before JAX takes 70% of it; the images travel as a .npz in OUT, the results
    as OUT/torch.json (rewritten after each result, so a cut run keeps them).
    """
    npz = args.out / "cifar_for_torch.npz"
    np.savez(npz, train_x=data["train"][0], train_y=data["train"][1], test_x=data["test"][0],
             test_y=data["test"][1], mean=data["mean"], std=data["std"])
    result_file = args.out / "torch.json"
    result_file.unlink(missing_ok=True)
    child = subprocess.run([sys.executable, __file__, *args.argv, "--torch-only", str(npz)])
    npz.unlink()
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if child.returncode != 0:
        result["torch_failed"] = f"the PyTorch child exited with status {child.returncode}"
    return result


def torch_child(args, plan):
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    result, result_file = {}, args.out / "torch.json"

    def save(_=None):
        tmp = result_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(result_file)

    if args.torch:
        result["torch"] = torch_throughput(batch_sizes(plan, args.recipe), args.torch_steps, warmup=10,
                                           repeats=args.torch_repeats)
        save()
    if args.torch_train:
        arrays = np.load(args.torch_only)
        data = {"train": (arrays["train_x"], arrays["train_y"]), "test": (arrays["test_x"], arrays["test_y"]),
                "mean": arrays["mean"], "std": arrays["std"]}
        result["torch_training"] = {}
        torch_training(args.torch_train, args.recipe, args.seed, data,
                       on_result=lambda r: (result["torch_training"].update(r), save()))


def print_table(report):
    print("\nmodel | batch | epochs | train s | plain | flips | flips+shifts | keras img/s | torch bf16+CL img/s")
    torch_rates = report.get("torch", {}).get("images_per_s", {})
    for name, r in report["recipes"].items():
        rate = torch_rates.get(r.get("model", name), {}).get(str(r.get("batch_size")), {}).get("channels_last+bf16")
        cells = [name, r.get("batch_size"), r.get("epochs"), r.get("train_s"),
                 *(f"{100 * r[k]:.2f}" if k in r else "-" for k in ("test_accuracy", "flip_accuracy",
                                                                   "flip_shift_accuracy")),
                 r.get("keras_images_per_s"), rate]
        print(" | ".join(str(c) for c in cells) + (f"  FAILED {r['failed']}" if "failed" in r else ""))
    for name, r in report.get("torch_training", {}).items():
        cells = [f"torch {name}", r.get("batch_size"), r.get("epochs"), r.get("train_s"),
                 *(f"{100 * r[k]:.2f}" if k in r else "-" for k in ("test_accuracy", "flip_accuracy")), "-"]
        print(" | ".join(str(c) for c in cells) + (f"  FAILED {r['failed']}" if "failed" in r else ""))


if __name__ == "__main__":
    sys.exit(script_exit_status(main, "gpu_recipes.py"))
