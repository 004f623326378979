"""How long a study will take, from measured seconds per training image, and where each figure comes from.

Training time scales with the images a run sees, so every estimate is a
cost per training image times

    images = train x epochs + (validation x epochs + 2 x test) / 3

(validation and the two test passes, plain and flipped, run forward only: a
third of a training step's work, the usual forward:backward 1:2) plus
`OVERHEAD_SECONDS` per run for building, tracing and writing. The cost per
image comes from the first of:

1. the run itself, when it has finished epochs (an interrupted arm);
2. a finished run measured on this machine: any run directory under the
   study folder or the `--timings-from` folders (default `runs/`) with the same
   model, input size, precision and batch norm; the median epoch after the
   first, divided by its training images;
3. `REFERENCE`: seconds per 1,000 CIFAR-10 training images measured for the
   README's models on the project's 2-core Xeon (mixed_bfloat16, 32x32);
4. MACs: alexnet_cifar's reference time per multiply-accumulate times the
   model's MACs at its input (`kerascnn.analysis.profile`); rough, since
   efficiency differs between architectures.
"""

import dataclasses
import os
import pathlib
import statistics

from kerascnn.errors import DataError
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history

OVERHEAD_SECONDS = 20.0
FORWARD_SHARE = 1.0 / 3.0

# Seconds per 1,000 training images, by (model, image side), on the project's 2-core
# Xeon with AMX (mixed_bfloat16, batch 128-256). Measured: alexnet_cifar 1,483 s for
# 10 epochs of 50,000 (docs/results.md#recipes); vgg19 287 s for its first epoch of
# 45,000 with the defaults (docs/results.md, "fit vgg19 with the defaults"); vgg16
# about 250-290 s per 50,000 (the lead's measurement, 2026-12). Relative to
# alexnet_cifar, measured in the same session: the two-tower `alexnet` at 96x96
# (CIFAR resized, LRN) 4.2-5.2x per image (2026-11-30, 1,280 images, 3 epochs; its
# grouped convolutions, LRN and the resize cost far more than its 97 MMACs say), and
# from the float32 train-step table of the AVX-512 host (docs/results.md: alexnet_cifar
# 248, vgg16_bn 491, googlenet_cifar 4,800, resnet18 833 s per 45,000).
REFERENCE = {
    ("alexnet_cifar", 32): 2.97,
    ("vgg16", 32): 5.4,
    ("vgg19", 32): 6.4,
    ("vgg16_bn", 32): 5.9,
    ("googlenet_cifar", 32): 57.5,
    ("resnet18", 32): 10.0,
    ("alexnet", 96): 14.0,
}
REFERENCE_NOTE = "2-core Xeon, mixed_bfloat16 (kerascnn/studies/estimate.py says where each comes from)"
REFERENCE_MACS = 148.6e6  # alexnet_cifar at 32x32, per image


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Seconds for one run and where the cost per image came from."""

    seconds: float
    seconds_per_epoch: float
    images_per_epoch: int
    epochs_left: int
    source: str


def data_sizes(config):
    """(training images, test images) of a run's data, before --limit-train; counted for folders."""
    data = config.data
    if data.data_dir:
        return _folder_sizes(data.data_dir)
    if data.dataset == "synthetic":
        return 5000, 1000
    return 50000, 10000  # cifar10, cifar100 and most small tensorflow-datasets sets


def _folder_sizes(path):
    path = pathlib.Path(path)
    if (path / "train").is_dir():
        def count(split):
            return sum(len(files) for _, _, files in os.walk(path / split))

        return count("train"), count("test")
    return 50000, 10000  # the CIFAR-10 binary archive


def split_sizes(config):
    """(train, validation, test) images of a run, as `kerascnn.data.pipeline.split_indices` splits them.

    The validation fraction is held out first; `limit_train` then keeps that
    many (or that fraction) of the remaining training images, and the
    validation set shrinks in proportion.
    """
    total, test = data_sizes(config)
    split, limit = config.data.val_split, config.data.limit_train
    val = int(round(total * split))
    train = total - val
    if limit is not None:
        train = min(limit, train) if isinstance(limit, int) else max(1, int(round(train * limit)))
        val = int(round(train * split / (1.0 - split)))
    return train, val, test


def measured_cost(run_dir):
    """Seconds per training image measured by a run (median epoch after the first), or None."""
    config, history = _read_measured(run_dir)
    if config is None:
        return None
    seconds = [r["epoch_seconds"] for r in history if "epoch_seconds" in r]
    train = (config.get("resolved") or {}).get("num_train")
    if not isinstance(train, int) or isinstance(train, bool):
        return None
    if not seconds or not train:
        return None
    steady = seconds[1:] if len(seconds) > 1 else seconds
    return statistics.median(steady) / train


def _read_measured(run_dir):
    """(config dict, history) of a run to take timings from; (None, None) when either cannot be read.

    Timings are a best guess: a damaged or foreign run among the folders
    searched gives no measurement rather than stopping the dry run.
    """
    try:
        return rundir.read_config(run_dir), read_history(pathlib.Path(run_dir) / rundir.HISTORY, missing_ok=True)
    except DataError:
        return None, None


def _signature(config_dict):
    resolved = config_dict.get("resolved") or {}
    options = config_dict.get("model_options") or {}
    return (config_dict.get("model"), tuple(resolved.get("image_shape") or ()), config_dict.get("precision"),
            bool(options.get("batch_norm")), options.get("width_multiplier", 1.0))


class Timings:
    """Measured costs per image of finished runs under some folders, by run signature."""

    def __init__(self, roots):
        self.found = {}
        for root in roots:
            root = pathlib.Path(root)
            if not root.is_dir():
                continue
            for config_path in sorted(root.glob("**/" + rundir.CONFIG)):
                run = config_path.parent
                if not (run / rundir.METRICS).exists():
                    continue
                cost = measured_cost(run)
                if cost is None:
                    continue
                config, _ = _read_measured(run)
                try:
                    key = _signature(config)
                    hash(key)
                except (TypeError, AttributeError):  # a setting of an unexpected type: no signature
                    continue
                self.found.setdefault(key, []).append((cost, str(run)))

    def lookup(self, model, image_shape, precision, batch_norm, width):
        hits = self.found.get((model, tuple(image_shape), precision, bool(batch_norm), width))
        if not hits:
            return None
        cost, run = sorted(hits)[len(hits) // 2]
        return cost, f"measured: {run} ({len(hits)} matching run{'s' if len(hits) > 1 else ''})"


def _input_shape(config):
    from kerascnn.models import model_defaults

    size = config.data.image_size
    if size is None:
        if config.data.dataset == "synthetic" or config.data.data_dir or config.data.dataset in (None, "cifar10", "cifar100"):
            size = (32, 32)
        else:
            size = tuple(model_defaults(config.model).get("input_shape", (32, 32, 3))[:2])
    return (*size, 3)


def _concrete_precision(config):
    from kerascnn.runtime import hardware

    return config.precision if config.precision != "auto" else hardware.resolve(config)[0].precision


def _macs(config, shape):
    from kerascnn.analysis.compare import run_macs

    return run_macs({"model": config.model, "model_options": config.model_options,
                     "resolved": {"image_shape": list(shape), "num_classes": 10}})


def cost_per_image(config, timings):
    """(seconds per training image, where the figure comes from) for a planned run."""
    shape = _input_shape(config)
    options = config.model_options
    precision = _concrete_precision(config)
    found = timings.lookup(config.model, shape, precision, options.get("batch_norm"),
                           options.get("width_multiplier", 1.0))
    if found:
        return found
    key = (config.model, shape[0])
    if key in REFERENCE and shape[0] == shape[1] and options.get("width_multiplier", 1.0) == 1.0:
        return REFERENCE[key] / 1000, (f"reference: {config.model} at {shape[0]}x{shape[1]} {REFERENCE[key]:g} s "
                                       f"per 1,000 images, {REFERENCE_NOTE}")
    base = REFERENCE[("alexnet_cifar", 32)]
    macs = _macs(config, shape)
    if macs is None:
        return base / 1000, "reference: alexnet_cifar's time (the model could not be profiled)"
    return base / 1000 * macs / REFERENCE_MACS, (
        f"MACs: {macs / 1e6:,.1f} M per image at {shape[0]}x{shape[1]} x alexnet_cifar's {base:g} s per 1,000 "
        "images at 148.6 M (rough)")


def estimate_run(config, run_dir, timings, epochs_done=0):
    """The `Estimate` of a planned run, from its own history when it has one."""
    train, val, test = split_sizes(config)
    own = measured_cost(run_dir) if run_dir is not None and epochs_done else None
    if own is not None:
        cost, source = own, f"measured by this run ({epochs_done} epochs done)"
    else:
        cost, source = cost_per_image(config, timings)
    epochs_left = max(config.epochs - epochs_done, 0)
    per_epoch = cost * (train + FORWARD_SHARE * val)
    seconds = per_epoch * epochs_left + cost * FORWARD_SHARE * 2 * test + OVERHEAD_SECONDS
    return Estimate(seconds, per_epoch, train, epochs_left, source)


def format_duration(seconds):
    """'45 s', '12 min', '2.3 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
