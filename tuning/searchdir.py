"""The results folder of a search: layout, identity, resume or start over.

    <results_dir>/
        search.json        identity (model, space, tuner, data); written first
        search/            KerasTuner's project: oracle.json, tuner0.json,
                           trial_<id>/ (trial.json, checkpoint.weights.h5,
                           kerascnn_trial.json: our per-trial measurements)
        tensorboard/       one folder per trial, with HParams
        trials.csv         one row per trial (rewritten after every trial)
        summary.md         the best trials, the plots
        plots/*.png

Re-running the same search in the same folder resumes it: KerasTuner
reloads its oracle from search/, finished trials are kept, a trial that was
running when the process died is run again. A folder made by a different
search (another model, space, tuner or data) is refused unless
`--overwrite`, which deletes it and starts over.
"""

import os
import pathlib
import shutil
import time

from kerascnn.storage import rundir
from kerascnn.errors import ConfigError, DataError

IDENTITY = "search.json"
PROJECT = "search"
EXTRAS = "kerascnn_trial.json"
TRIALS_CSV = "trials.csv"
SUMMARY = "summary.md"
PLOTS = "plots"
TENSORBOARD = "tensorboard"
# What makes two searches the same search: resuming is only allowed when these agree.
IDENTITY_KEYS = ("model", "space", "tuner", "data")
WORKER_WAIT_SECONDS = 600


def default_results_dir(model, space, tuner, root="tuning_runs"):
    return pathlib.Path(root) / f"{model}-{space}-{tuner}"


def distributed_role():
    """'chief', 'worker' or None, from KerasTuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if not os.environ.get(v)]
    if missing:
        raise ConfigError(
            f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} is not; set all three "
            "(KERASTUNER_TUNER_ID=chief on the chief, tuner0, tuner1, ... on the workers)"
        )
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def read_identity(results_dir):
    """search.json of a results folder (None when there is none); DataError when it is not a search's identity."""
    path = pathlib.Path(results_dir) / IDENTITY
    what = f"the results folder {results_dir} is damaged: delete it, or start over with --overwrite"
    return rundir.read_json(path, what, required={"model": str, "space": str, "tuner": str},
                            optional={"data": (dict, None)}, missing_ok=True)


def _describe(identity):
    return ", ".join(f"{k} {identity.get(k)}" for k in ("model", "space", "tuner"))


def prepare(results_dir, identity, overwrite=False, role=None):
    """Check (and create, or wipe with `overwrite`) the results folder.

    Returns True when an earlier search is being resumed. Workers of a
    distributed search never delete or create anything: they wait for the
    chief's search.json and check they run the same search.
    """
    results_dir = pathlib.Path(results_dir)
    if role == "worker":
        # The chief checks (or wipes) the folder and writes search.json; a
        # worker started first waits for it rather than race the chief.
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        while read_identity(results_dir) is None:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"no search.json appeared in {results_dir} within {WORKER_WAIT_SECONDS} s: start the chief "
                    "with the same --results-dir (a folder both can reach)"
                )
            time.sleep(0.5)
    wipe = overwrite and role != "worker"
    try:
        existing = read_identity(results_dir)
    except DataError:
        if not (wipe and (results_dir / PROJECT).is_dir()):
            raise
        existing = {}  # a damaged search.json beside a search: --overwrite may delete it
    non_empty = results_dir.is_dir() and any(results_dir.iterdir())
    if wipe and non_empty:
        if existing is None:
            raise ConfigError(
                f"--overwrite would delete {results_dir}, which is not a tuning results folder "
                "(no search.json); choose another --results-dir"
            )
        shutil.rmtree(results_dir)
        existing, non_empty = None, False
    if existing is not None:
        same = all(existing.get(k) == identity.get(k) for k in IDENTITY_KEYS)
        if not same:
            raise ConfigError(
                f"{results_dir} holds a different search ({_describe(existing)}, data {existing.get('data')}); "
                "re-run with --overwrite to start over or choose another --results-dir"
            )
        return True
    if non_empty and role != "worker":
        raise ConfigError(
            f"{results_dir} exists and is not a tuning results folder (no search.json); "
            "choose another --results-dir"
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    if role != "worker":
        rundir.write_json(results_dir / IDENTITY, identity)
    return False
