"""The study folder: its layout, its identity, and the state of each run in it.

    <study folder>/               default studies/<study>-<budget>
        study.json                the plan (`StudyPlan.identity()`): written first, read by the report
        study.toml                the study file as it was given
        runs/<arm>-seed<seed>/    ordinary `fit` run directories
        runs/<run>.failed         why a run stopped (diverged, out of memory); it is not retried
        search/                   a search study's `tune` results folder
        report.md, report.html, results.csv, figures/

Re-running a study in its folder continues it: finished runs are kept, an
interrupted one resumes (`fit --resume`), the rest start. A folder holding
another study, another budget, or runs planned with other settings is
refused, naming the first difference, so results are never mixed.
"""

import json
import pathlib

from kerascnn.errors import ConfigError, DataError
from kerascnn.storage import rundir
from kerascnn.storage.atomic import write_text

STUDY_JSON = "study.json"
STUDY_TOML = "study.toml"
RUNS = "runs"
FAILED_SUFFIX = ".failed"

FINISHED, FAILED, INTERRUPTED, NEW = "finished", "failed", "interrupted", "new"


def default_folder(study_name, budget, root="studies"):
    return pathlib.Path(root) / f"{study_name}-{budget}"


def read_identity(folder):
    """study.json of a study folder; DataError when `folder` is not one."""
    folder = pathlib.Path(folder)
    path = folder / STUDY_JSON
    if not folder.is_dir():
        raise DataError(f"study folder {folder} does not exist; pass the --out folder of a `study` run")
    try:
        return rundir.read_json(path)
    except FileNotFoundError:
        raise DataError(f"{folder} is not a study folder (no {STUDY_JSON}); pass the --out folder of a `study` run") from None
    except json.JSONDecodeError:
        raise DataError(f"{path} is not valid JSON; the study folder is damaged") from None


def _normal(obj):
    return json.loads(json.dumps(obj))


def _difference(old, new):
    """The first difference between two identities that makes them different studies, or None."""
    for key in ("study", "kind", "budget"):
        if old.get(key) != new.get(key):
            return f"{key} {old.get(key)!r} there, {new.get(key)!r} here"
    if _normal(old.get("search")) != _normal(new.get("search")):
        return "the search settings differ"
    before = {r["name"]: r for r in old.get("runs", [])}
    for run in new.get("runs", []):
        if run["name"] in before and _normal(before[run["name"]]["config"]) != _normal(run["config"]):
            return f"run {run['name']} was planned with other settings ({_first_change(before[run['name']]['config'], run['config'])})"
    return None


def _first_change(a, b, prefix=""):
    a, b = _normal(a), _normal(b)
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x != y:
            if isinstance(x, dict) and isinstance(y, dict):
                return _first_change(x, y, f"{prefix}{key}.")
            return f"{prefix}{key}: {x!r} then, {y!r} now"
    return "?"


def prepare(folder, plan):
    """Check the folder against `plan` (or create it); write study.json and study.toml. True when continuing."""
    folder = pathlib.Path(folder)
    identity = plan.identity()
    existing = None
    if (folder / STUDY_JSON).exists():
        existing = read_identity(folder)
        difference = _difference(existing, identity)
        if difference:
            raise ConfigError(
                f"{folder} holds a different study run ({difference}); choose another --out or delete the folder"
            )
    elif folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} exists and is not a study folder (no {STUDY_JSON}); choose another --out")
    rundir.write_json(folder / STUDY_JSON, _normal(identity))
    write_text(folder / STUDY_TOML, plan.study.text)
    (folder / RUNS).mkdir(exist_ok=True)
    return existing is not None


def run_dir(folder, name):
    return pathlib.Path(folder) / RUNS / name


def failure_path(folder, name):
    return pathlib.Path(folder) / RUNS / f"{name}{FAILED_SUFFIX}"


def run_state(folder, name):
    """FINISHED (metrics.json), FAILED (a .failed note), INTERRUPTED (config.json only) or NEW."""
    path = run_dir(folder, name)
    if (path / rundir.METRICS).exists():
        return FINISHED
    if failure_path(folder, name).exists():
        return FAILED
    if (path / rundir.CONFIG).exists():
        return INTERRUPTED
    if path.exists() and any(path.iterdir()):
        raise DataError(
            f"{path} holds files but no {rundir.CONFIG}; it was not made by `fit`: move it away and re-run the study"
        )
    return NEW


def failure(folder, name):
    try:
        return failure_path(folder, name).read_text().strip()
    except FileNotFoundError:
        return None


def record_failure(folder, name, message):
    write_text(failure_path(folder, name), message.strip() + "\n")
