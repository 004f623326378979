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
from kerascnn.storage import readback, rundir
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
    if folder.is_file():
        raise DataError(f"{folder} is a file, not a study folder; pass the --out folder of a `study` run")
    if not folder.is_dir():
        raise DataError(f"study folder {folder} does not exist; pass the --out folder of a `study` run")
    if not path.exists() and not path.is_symlink():
        raise DataError(f"{folder} is not a study folder (no {STUDY_JSON}); pass the --out folder of a `study` run")
    what = (f"the study folder is damaged: restore {STUDY_JSON} from a copy, or run the study again "
            "in a new folder (--out)")
    identity = rundir.read_json(path, what, required=IDENTITY_KEYS, optional=IDENTITY_OPTIONAL)
    for key, fields in (("runs", RUN_KEYS), ("arms", ARM_KEYS)):
        for i, entry in enumerate(identity.get(key) or []):
            if not isinstance(entry, dict):
                raise DataError(f"{path} has \"{key}[{i}]\" as {type(entry).__name__}, not an object; {what}")
            readback.check_keys(path, entry, fields, what, where=f"{key}[{i}].")
    return identity


# What the report and the resume read of study.json (`StudyPlan.identity()`).
IDENTITY_KEYS = {"study": str, "title": str, "budget": str}
IDENTITY_OPTIONAL = {"kind": str, "runs": list, "arms": list, "search": (dict, None), "skipped": list,
                     "figures": (list, None), "references": (list, None), "question": (str, None),
                     "baseline": (str, None), "source": (str, None), "budget_description": (str, None),
                     "data_override": (dict, None)}
RUN_KEYS = {"name": str, "arm": str, "seed": int, "config": dict}
ARM_KEYS = {"name": str, "label": str, "model": str}


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


def check_folder(folder, plan):
    """The identity of the study already in `folder` (None for a new folder); ConfigError when it is another's.

    Reads only: `run_study` calls it before opening the data, `prepare` again before writing.
    """
    folder = pathlib.Path(folder)
    if (folder / STUDY_JSON).exists() or (folder / STUDY_JSON).is_symlink():
        existing = read_identity(folder)
        difference = _difference(existing, plan.identity())
        if difference:
            raise ConfigError(
                f"{folder} holds a different study run ({difference}); choose another --out or delete the folder"
            )
        return existing
    if folder.is_file():
        raise ConfigError(f"{folder} is a file, not a study folder; choose another --out")
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} exists and is not a study folder (no {STUDY_JSON}); choose another --out")
    return None


def prepare(folder, plan):
    """Check the folder against `plan` (or create it); write study.json and study.toml. True when continuing."""
    folder = pathlib.Path(folder)
    identity = plan.identity()
    existing = check_folder(folder, plan)
    # Rewritten only when they change: a study continued as it was planned leaves them as they are, so a
    # refusal further on (a damaged run) leaves the folder as it found it.
    if existing is None or _normal(existing) != _normal(identity):
        rundir.write_json(folder / STUDY_JSON, _normal(identity))
    if existing is None or _copy_text(folder / STUDY_TOML) != plan.study.text:
        write_text(folder / STUDY_TOML, plan.study.text)
    (folder / RUNS).mkdir(exist_ok=True)
    return existing is not None


def _copy_text(path):
    """The text of the folder's copy of the study file; None when it is missing or damaged (it is written anew)."""
    try:
        return readback.read_text(path, missing_ok=True, allow_empty=True)
    except DataError:
        return None


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
    """Why the run `name` failed (its .failed note), or None when it has not failed."""
    path = failure_path(folder, name)
    what = f"the note of why run {name} failed is damaged: delete it and the run's folder to run it again"
    text = readback.read_text(path, what, missing_ok=True)
    if text is not None and not text.endswith("\n"):
        raise DataError(f"{path} is truncated (its last line stops before the end of the line); {what}")
    return None if text is None else text.strip()


def record_failure(folder, name, message):
    write_text(failure_path(folder, name), message.strip() + "\n")
