"""A chief and two workers on localhost share one search through KerasTuner's gRPC oracle."""

import csv
import json
import os
import pathlib
import socket
import subprocess
import sys

from tuning import searchdir

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--limit-train", "64", "--epochs", "1", "--width-multiplier", "0.125"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_chief_and_two_workers_finish_one_search_together(tmp_path):
    folder = tmp_path / "tune"
    argv = [sys.executable, "main.py", "tune", "vgg8", *TINY, "--max-trials", "4", "--results-dir", str(folder)]
    port = str(free_port())

    def start(tuner_id):
        env = dict(
            os.environ,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=port,
            PYTHONUNBUFFERED="1",
        )
        log = open(tmp_path / f"{tuner_id}.log", "w")
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log

    procs = {name: start(name) for name in ("chief", "tuner0", "tuner1")}
    try:
        for name, (proc, log) in procs.items():
            proc.wait(timeout=400)
            log.close()
            text = (tmp_path / f"{name}.log").read_text()
            assert proc.returncode == 0, f"{name} failed:\n{text[-3000:]}"
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()

    with open(folder / searchdir.TRIALS_CSV, newline="") as f:
        table = list(csv.DictReader(f))  # written by the chief when all trials had ended
    assert len(table) == 4 and {r["status"] for r in table} == {"COMPLETED"}
    # Four distinct grid points, each trained once, by the workers only (the chief serves).
    assert len({(r["val_split"], r["regularization"], r["batch_size"]) for r in table}) == 4
    ran_by = [r["tuner_id"] for r in table]
    assert set(ran_by) == {"tuner0", "tuner1"}, ran_by
    pids = {
        json.loads((folder / "search" / f"trial_{r['trial_id']}" / searchdir.EXTRAS).read_text())["pid"]
        for r in table
    }
    assert pids == {procs["tuner0"][0].pid, procs["tuner1"][0].pid}
    assert (folder / searchdir.SUMMARY).exists() and (folder / searchdir.PLOTS / "train_vs_test.png").exists()
    assert "the chief writes the report" in (tmp_path / "tuner0.log").read_text()
