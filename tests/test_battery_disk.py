"""A full or failing disk during a checkpoint or an export: one line, and the last good state intact.

Two ways to fill the disk. Where this machine lets the test mount a small
tmpfs (root in a container or VM that allows it), a real one: the run writes
to a filesystem with room for its first epoch only, so the next write fails
wherever the kernel says so (h5py, zip, TensorBoard or our own writes). Where
it does not, the same test runs with the failure injected by
`kerascnn.faults` at the write the disk would have refused. The other
tests inject ENOSPC and EIO at every write point of a run and an export:
each must end in one line on stderr, exit 2, the previous complete files
untouched, no temporary file, and `fit --resume` must then finish the run.
"""

import contextlib
import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import keras
import pytest

from battery import leftovers, run_in_process
from kerascnn import faults
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["vgg8", "--dataset", "synthetic", "--limit-train", "64", "--batch-size", "32", "--width-multiplier", "0.125"]


def cli(argv, cwd, fault=None, monkeypatch=None):
    """(exit status, stderr) of `kerascnn argv` in this process, with KERASCNN_FAULT=fault."""
    if fault:
        monkeypatch.setenv(faults.ENV, fault)
    else:
        monkeypatch.delenv(faults.ENV, raising=False)
    faults._hits.clear()
    code, _, stderr = run_in_process(argv, cwd)
    monkeypatch.delenv(faults.ENV, raising=False)
    return code, stderr


def assert_one_line(code, stderr, words):
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip() and "WARNING" not in line]
    assert code == 2 and len(lines) == 1, (code, stderr[-2000:])
    for word in words:
        assert word in lines[0], lines[0]


def snapshot(folder):
    return {p.name: p.read_bytes() for p in pathlib.Path(folder).iterdir() if p.is_file()}


@pytest.mark.parametrize("fault", ["enospc@write:history.csv:2", "enospc@checkpoint.best:2", "eio@backup.before:2",
                                   "enospc@write:latest.weights.h5:2", "eio@write:training_metadata.json:2",
                                   "enospc@write:metrics.json:1"])
def test_a_write_the_disk_refuses_during_fit_is_one_line_and_resume_finishes(tmp_path, monkeypatch, fault):
    # --val-split 0: best.keras is saved every epoch, so the second epoch's checkpoint is always written.
    argv = ["fit", *TINY, "--epochs", "2", "--val-split", "0", "--run-dir", "run"]
    code, stderr = cli(argv, tmp_path, fault, monkeypatch)
    assert_one_line(code, stderr, ["cannot write", "fit --resume run"])
    run = tmp_path / "run"
    assert leftovers(tmp_path) == []
    assert not (run / rundir.METRICS).exists()
    epochs = [int(r["epoch"]) for r in read_history(run / rundir.HISTORY)]
    assert epochs in ([0], [0, 1])  # the last good history, whole
    keras.saving.load_model(run / rundir.BEST, compile=False)  # the last good checkpoint, whole

    code, stderr = cli(["fit", "--resume", "run"], tmp_path, None, monkeypatch)
    assert code == 0, stderr[-2000:]
    assert [int(r["epoch"]) for r in read_history(run / rundir.HISTORY)] == [0, 1]
    assert json.loads((run / rundir.METRICS).read_text())["epochs_run"] == 2


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    assert run_in_process(["fit", *TINY, "--epochs", "1", "--run-dir", "run"], work)[0] == 0
    return work


@pytest.mark.parametrize("fault", ["enospc@export.write:1", "eio@export.version:1"])
def test_a_write_the_disk_refuses_during_export_is_one_line_and_leaves_no_version(finished, monkeypatch, fault):
    code, stderr = cli(["export", "run", "--export-dir", "exports"], finished, fault, monkeypatch)
    assert_one_line(code, stderr, ["cannot write"])
    root = finished / "exports" / "vgg8"
    assert not [p for p in root.glob("*") if p.name.isdigit()] if root.exists() else True
    assert leftovers(finished) == []


@contextlib.contextmanager
def small_disk(path, size):
    """A tmpfs of `size` mounted at `path` (yields True), or nothing mounted (yields False)."""
    path.mkdir(parents=True)
    mounted = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", f"kerascnn-{uuid.uuid4().hex[:8]}", str(path)],
        capture_output=True,
    ).returncode == 0
    try:
        yield bool(mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


class FillDiskAfterFirstEpoch(keras.callbacks.Callback):
    """After the first epoch is saved, fills the filesystem but for `spare` bytes."""

    def __init__(self, folder, spare=64 * 1024):
        super().__init__()
        self.folder, self.spare = pathlib.Path(folder), spare

    def on_epoch_end(self, epoch, logs=None):
        if epoch != 0:
            return
        stats = os.statvfs(self.folder)
        free = stats.f_bavail * stats.f_frsize - self.spare
        with open(self.folder / "ballast", "wb") as f:
            f.write(b"\0" * max(free, 0))


def test_a_really_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """A real full filesystem where one can be mounted; else the failure injected at the checkpoint write."""
    disk = tmp_path / "disk"
    with small_disk(disk, "64m") as real:
        argv = ["fit", *TINY, "--epochs", "3", "--val-split", "0", "--run-dir", str(disk / "run")]
        if real:
            # The callback runs after the run's own callbacks of epoch 1; epoch 2's writes meet a full disk.
            fit_module = importlib.import_module("kerascnn.training.fit")
            original = fit_module.fit

            def fit_filling(*args, **kwargs):
                kwargs["extra_callbacks"] = (*kwargs.get("extra_callbacks", ()), FillDiskAfterFirstEpoch(disk))
                return original(*args, **kwargs)

            monkeypatch.setattr(fit_module, "fit", fit_filling)
            code, stderr = cli(argv, tmp_path, None, monkeypatch)
        else:
            code, stderr = cli(argv, tmp_path, "enospc@checkpoint.best:2", monkeypatch)
        print(f"full disk: {'a real 64 MB tmpfs' if real else 'injected ENOSPC'}: {stderr.strip()}",
              file=sys.__stdout__)
        assert_one_line(code, stderr, ["cannot write", "fit --resume"])
        run = disk / "run"
        assert leftovers(disk) == []
        assert not (run / rundir.METRICS).exists()
        keras.saving.load_model(run / rundir.BEST, compile=False)
        assert [int(r["epoch"]) for r in read_history(run / rundir.HISTORY)][:1] == [0]
        (disk / "ballast").unlink(missing_ok=True)
        code, stderr = cli(["fit", "--resume", str(run)], tmp_path, None, monkeypatch)
        assert code == 0, stderr[-2000:]
        assert json.loads((run / rundir.METRICS).read_text())["epochs_run"] == 3
