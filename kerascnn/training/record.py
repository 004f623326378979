"""Phase 5: the typed run record (`kerascnn.record.RunRecord`) of a new run.

Everything a run resolved or measured at start-up, written into config.json
with the settings, so any result can be traced back and the run replayed or
resumed without measuring anything again.
"""

import dataclasses
import pathlib
import platform
import subprocess

import keras
import numpy as np
import tensorflow as tf

from kerascnn.record import RunRecord
from kerascnn.runtime.onednn import onednn_enabled


def git_commit():
    """The commit of the kerascnn checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=pathlib.Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions():
    import kerascnn

    return {
        "kerascnn": kerascnn.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        # oneDNN's or Eigen's CPU kernels (kerascnn.runtime.onednn): float32 results differ in the last bits.
        "tensorflow_onednn": onednn_enabled(),
    }


def data_record(source, input_shape, datasets):
    """The record's data facts: classes, shapes, normalisation, augmentation, split sizes."""
    info = source.info
    return RunRecord(
        source=info.name,
        class_names=tuple(info.class_names),
        num_classes=info.num_classes,
        image_shape=tuple(input_shape),
        mean=tuple(datasets.preprocessing.mean),
        std=tuple(datasets.preprocessing.std),
        preprocessing=datasets.preprocessing.to_dict(),
        # The preset actually used, and the PCA of the training pixels
        # (0-255 scale) when colour jitter is on: enough to rebuild it.
        augmentation=dataclasses.asdict(datasets.augmentation),
        num_train=datasets.num_train,
        num_val=datasets.num_val,
        num_test=datasets.num_test,
        skipped_images=tuple(getattr(source, "skipped_images", ())),  # --skip-bad-images
        steps_per_epoch=datasets.steps_per_epoch,
    )


def make_record(plan, runtime, data, built):
    """The `RunRecord` of a new run, from its plan, runtime, data and models."""
    return data_record(data.source, data.input_shape, data.datasets).replace(
        strategy=runtime.description,
        replicas=runtime.replicas,
        batch_size=data.batch_size,
        global_batch=data.global_batch,
        lr=built.optim.lr,
        sync_bn_layers=built.sync_bn_layers,
        model_parallel=plan.placement.record() if plan.placement is not None else None,  # device of each block
        auto=dict(plan.auto_reasons),  # why --precision / --jit auto chose what `precision` / `jit` say
        transfer=built.transfer,  # --weights / --init-from: layers loaded, phases
        # Keras wraps the optimizer in a LossScaleOptimizer under mixed_float16.
        loss_scale=type(built.model.optimizer).__name__ == "LossScaleOptimizer",
        params=int(built.inference.count_params()),
        versions=versions(),
    )


def recorded_config(plan, runtime, data, built):
    """The RunConfig config.json holds: a resumed run's as it was, a new run's with its record."""
    if plan.resumed:
        return plan.config
    return plan.config.replace(resolved=make_record(plan, runtime, data, built))
