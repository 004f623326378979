"""Interruption at any point: `fit`, `tune` and `export` killed (SIGKILL) at the fault points, then continued.

The product marks the moments that matter for what a crash leaves on disk
with `kerascnn.faults.point(name)` (a phase boundary, a file written
to its temporary name but not yet renamed, the middle of an export); the
environment variable KERASCNN_FAULT="kill@NAME:N" makes a process SIGKILL
itself the N-th time it reaches NAME. Every kill must leave a state that
the next command continues from, and no partial file:

- fit: a chain of kills, each process continuing the last (`fit --resume`
  once the run directory exists, else the same command again); after each
  kill the run directory is either absent or holds a readable config.json,
  a complete history.csv with consecutive epochs and a loadable best.keras,
  and every export version is complete; the chain ends with a run (the
  unkilled continuation, in the test's own process) of the full number of
  epochs, a finite metrics.json, exactly one export, and no temporary file
  or staging folder anywhere.
- tune: killed in the middle of its second trial, the same command resumes
  the search: every trial once, all completed, the first untouched.
- export: killed while writing and before publishing, the export root keeps
  only its earlier complete versions; the next export removes the leftovers.

The default suite samples the kill points (one chain of `SAMPLE` points of
`FIT_POINTS`, chosen by a seed that changes every day and is printed, so that
the suite walks the whole list over time); KERASCNN_BATTERY=full tries every
point, KERASCNN_BATTERY_SEED=S repeats a day's sample.
"""

import datetime
import json
import math
import os
import pathlib
import random
import signal
import subprocess
import sys

import keras
import pytest

from battery import leftovers
from kerascnn import faults
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history
from test_tuning_search import extras, read_trials

ROOT = pathlib.Path(__file__).resolve().parents[1]
KILLED = -signal.SIGKILL

# A run of three epochs, two training batches and one validation batch each, exported at the end.
FIT = ["fit", "vgg8", "--dataset", "synthetic", "--limit-train", "64", "--batch-size", "32", "--epochs", "3",
       "--width-multiplier", "0.125", "--run-dir", "run", "--export", "--export-dir", "exports"]
EPOCHS = 3

# (point, the N-th time it is reached) for one process that starts the run from nothing;
# a resumed process reaches them again from its backup's epoch on.
FIT_POINTS = (
    ("data.opened", 1), ("write:config.json", 1), ("run_dir.created", 1),
    ("train.batch", 1), ("train.batch", 2), ("validation.batch", 1), ("write:history.csv", 1),
    ("backup.before", 1), ("write:latest.weights.h5", 1), ("write:training_metadata.json", 1), ("backup.after", 1),
    ("checkpoint.best", 1), ("epoch.end", 1),
    ("train.batch", 4), ("write:history.csv", 2), ("backup.before", 2), ("write:training_metadata.json", 2),
    ("checkpoint.best", 2),
    ("epoch.end", 3), ("evaluation", 1), ("export.write", 1), ("export.version", 1), ("write:metrics.json", 1),
)
SAMPLE = 5


def _seed():
    given = os.environ.get("KERASCNN_BATTERY_SEED")
    return int(given) if given else datetime.date.today().toordinal()


def _chains():
    """Chains of kill points: every point (KERASCNN_BATTERY=full, in chains of 5), or one sampled chain."""
    if os.environ.get("KERASCNN_BATTERY") == "full":
        return [FIT_POINTS[i:i + SAMPLE] for i in range(0, len(FIT_POINTS), SAMPLE)]
    rng = random.Random(_seed())
    return [sorted(rng.sample(FIT_POINTS, SAMPLE), key=FIT_POINTS.index)]


def run(args, cwd, fault=None, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(faults.ENV, None)
    if fault:
        env[faults.ENV] = fault
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def finish(args, cwd, monkeypatch, capsys=None):
    """The command that continues after the kills, run by `main` in this process: (exit status, stdout).

    Only the killed processes need an interpreter of their own; the continuation is
    the same command line through the same entry point, without a second
    TensorFlow start-up (seconds of the suite per call).
    """
    from kerascnn.cli.app import main

    monkeypatch.delenv(faults.ENV, raising=False)
    monkeypatch.chdir(cwd)
    status = main(list(args))
    return status, capsys.readouterr().out if capsys else ""


def complete_versions(model_root):
    """The export versions under `model_root`; asserts each holds every file of a version."""
    root = pathlib.Path(model_root)
    versions = sorted(p for p in root.glob("*") if p.name.isdigit()) if root.is_dir() else []
    for v in versions:
        missing = [f for f in ("saved_model.pb", "model.keras", "labels.txt", "kerascnn.json") if not (v / f).is_file()]
        assert not missing, f"export {v} lacks {missing}"
        json.loads((v / "kerascnn.json").read_text())
    return versions


def check_consistent(work, where):
    """What a killed fit may leave: nothing, or a run directory that `--resume` continues."""
    run_dir = work / "run"
    if run_dir.exists():
        config = json.loads((run_dir / rundir.CONFIG).read_text())  # present and whole, or the folder is not there
        assert config["model"] == "vgg8", where
        epochs = [int(r["epoch"]) for r in read_history(run_dir / rundir.HISTORY)]
        assert epochs == list(range(len(epochs))), f"{where}: history epochs {epochs}"
        if (run_dir / rundir.BEST).exists():
            keras.saving.load_model(run_dir / rundir.BEST, compile=False)
        if (run_dir / rundir.METRICS).exists():
            json.loads((run_dir / rundir.METRICS).read_text())
    complete_versions(work / "exports" / "vgg8")


@pytest.mark.parametrize("chain", _chains(), ids=lambda chain: "+".join(f"{p}:{n}" for p, n in chain))
def test_fit_killed_at_a_chain_of_points_finishes_whole(tmp_path, chain, monkeypatch):
    tried, reached = [], []
    for name, n in chain:
        command = ["fit", "--resume", "run"] if (tmp_path / "run" / rundir.CONFIG).exists() else FIT
        result = run(command, tmp_path, fault=f"kill@{name}:{n}")
        where = f"killed at {name}:{n} (seed {_seed()})"
        tried.append(f"{name}:{n}")
        if result.returncode == 0:  # the point was not reached in what was left to do: the run finished
            break
        assert result.returncode == KILLED, f"{where}: exit {result.returncode}\n{result.stderr[-2000:]}"
        reached.append(f"{name}:{n}")
        check_consistent(tmp_path, where)
    else:
        command = ["fit", "--resume", "run"] if (tmp_path / "run" / rundir.CONFIG).exists() else FIT
        assert finish(command, tmp_path, monkeypatch)[0] == 0, f"after {reached}"

    run_dir = tmp_path / "run"
    history = read_history(run_dir / rundir.HISTORY)
    assert [int(r["epoch"]) for r in history] == list(range(EPOCHS)), reached
    metrics = json.loads((run_dir / rundir.METRICS).read_text())
    assert metrics["epochs_run"] == EPOCHS
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)), metrics
    keras.saving.load_model(run_dir / rundir.BEST, compile=False)
    # One export, also when the run was killed after publishing it and before metrics.json: the
    # resumed run finds that version (`find_export`, 8e028d1) and keeps it rather than publishing
    # the same model twice. (This expected two until a chain sampled write:metrics.json on 2026-12-02.)
    assert len(complete_versions(tmp_path / "exports" / "vgg8")) == 1, reached
    assert leftovers(tmp_path) == [], reached
    print(f"fit kill points (seed {_seed()}): tried {len(tried)}, killed and survived {len(reached)}: "
          f"{', '.join(reached)}", file=sys.__stdout__)


TUNE = ["tune", "vgg8", "--dataset", "synthetic", "--limit-train", "64", "--epochs", "1", "--width-multiplier",
        "0.125", "--max-trials", "3", "--results-dir", "search"]


def test_a_search_killed_inside_a_trial_resumes_without_losing_or_repeating_one(tmp_path, monkeypatch, capsys):
    # Two batches per trial (58 training images, batch 32): the third batch is the second trial's first.
    killed = run(TUNE, tmp_path, fault="kill@train.batch:3")
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    done = [r for r in read_trials(tmp_path / "search") if r["status"] == "COMPLETED"]
    assert len(done) == 1
    first = extras(tmp_path / "search", done[0]["trial_id"])

    status, out = finish(TUNE, tmp_path, monkeypatch, capsys)
    assert status == 0 and "resuming" in out, out[-2000:]
    table = read_trials(tmp_path / "search")
    assert len(table) == 3 and {r["status"] for r in table} == {"COMPLETED"}
    assert len({r["trial_id"] for r in table}) == 3
    assert len({(r["val_split"], r["regularization"]) for r in table}) == 3  # three grid points, none twice
    assert extras(tmp_path / "search", done[0]["trial_id"]) == first  # the finished trial was not redone
    assert leftovers(tmp_path / "search") == []
    print("tune kill points: tried 1, killed and survived 1: train.batch:3 (inside trial 2)", file=sys.__stdout__)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from kerascnn.cli.app import main

    work = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv(faults.ENV, raising=False)
        monkeypatch.chdir(work)
        assert main([*FIT[:FIT.index("--export")], "--epochs", "1"]) == 0
    return work


@pytest.mark.parametrize("point", ["export.write", "export.version"])
def test_a_killed_export_leaves_the_earlier_versions_and_no_partial_one(finished_run, point, monkeypatch):
    root = finished_run / "exports" / "vgg8"
    before = complete_versions(root)
    killed = run(["export", "run", "--export-dir", "exports"], finished_run, fault=f"kill@{point}:1")
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    assert complete_versions(root) == before  # no new version, whole or partial, appeared
    assert finish(["export", "run", "--export-dir", "exports"], finished_run, monkeypatch)[0] == 0
    assert len(complete_versions(root)) == len(before) + 1
    assert leftovers(finished_run / "exports") == []  # the killed export's staging folder is gone
