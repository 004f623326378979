"""A study's numbers, read back from its run directories alone, and summarised per arm over seeds.

Per run (`kerascnn.storage.rundir`): metrics.json (test accuracy of the
tested epoch, final training accuracy, overfitting gap = final train
accuracy - test accuracy, median seconds per epoch after the first,
parameters), history.csv (the curves), per_class_accuracy.csv and
confusion_matrix.csv. Per arm, over its finished seeds:

    test accuracy     mean, sample standard deviation (n - 1) and range (max - min)
    train accuracy, overfitting gap, seconds per epoch     means
    parameters        of the inference network (the same for every seed)
    MACs              per image, of the model rebuilt from config.json
                      (`kerascnn.analysis.compare.run_macs`)
"""

import dataclasses
import statistics

import numpy as np

from kerascnn.errors import DataError
from kerascnn.storage import readback, rundir
from kerascnn.storage.history import read_history
from kerascnn.studies import folder as study_folder


@dataclasses.dataclass
class RunOutcome:
    """One planned run as it stands on disk."""

    name: str
    arm: str
    seed: int
    state: str
    path: object
    config: dict = None
    metrics: dict = None
    history: list = dataclasses.field(default_factory=list)
    per_class: dict = None  # {class name: accuracy}
    confusion: np.ndarray = None
    class_names: tuple = ()
    failure: str = None

    @property
    def finished(self):
        return self.state == study_folder.FINISHED


@dataclasses.dataclass
class ArmSummary:
    """An arm over its finished seeds (see the module docstring)."""

    name: str
    label: str
    model: str
    runs: list
    planned: int
    test_mean: float = None
    test_std: float = None
    test_range: float = None
    tests: tuple = ()
    train_mean: float = None
    gap_mean: float = None
    seconds_per_epoch: float = None
    epochs: float = None
    params: int = None
    macs: int = None

    @property
    def seeds(self):
        return len(self.runs)


def _read_csv(path, numeric):
    """[header, *rows] of a run's table (None when the run has none: runs before it was written)."""
    table = readback.read_csv(path, rundir.damaged(path.parent, path.name), numeric=numeric, missing_ok=True)
    return None if table is None else [table[0], *table[1]]


def read_run(study_dir, planned):
    """The `RunOutcome` of one entry of study.json's runs."""
    name = planned["name"]
    path = study_folder.run_dir(study_dir, name)
    state = study_folder.run_state(study_dir, name)
    outcome = RunOutcome(name, planned["arm"], planned["seed"], state, path,
                         failure=study_folder.failure(study_dir, name))
    if not (path / rundir.CONFIG).exists() and state != study_folder.FINISHED:
        return outcome  # not started, or failed before its folder was made
    outcome.config = rundir.read_config(path)
    # A finished run has its history; an interrupted one may have stopped before its first epoch ended.
    outcome.history = read_history(path / rundir.HISTORY, missing_ok=not outcome.finished)
    if not outcome.finished:
        return outcome
    outcome.metrics = rundir.read_metrics(path)
    outcome.class_names = tuple((outcome.config.get("resolved") or {}).get("class_names") or ())
    rows = _read_csv(path / rundir.PER_CLASS_CSV, numeric=("images", "correct", "accuracy"))
    if rows:
        if len(rows[0]) < 4:
            raise DataError(f"{path / rundir.PER_CLASS_CSV} has {len(rows[0])} columns, not class, images, correct "
                            f"and accuracy; {rundir.damaged(path, rundir.PER_CLASS_CSV)}")
        outcome.per_class = {r[0]: (float(r[3]) if r[3] else None) for r in rows[1:]}
    rows = _read_csv(path / rundir.CONFUSION_CSV, numeric="rest")
    if rows:
        what = rundir.damaged(path, rundir.CONFUSION_CSV)
        try:
            outcome.confusion = np.array([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int64)
        except ValueError:
            raise DataError(f"{path / rundir.CONFUSION_CSV} has a count that is not a whole number; {what}") from None
        if outcome.confusion.shape != (len(rows[0]) - 1,) * 2:
            raise DataError(f"{path / rundir.CONFUSION_CSV} is not a square table of counts "
                            f"({len(rows) - 1} rows of {len(rows[0]) - 1} classes); {what}")
        outcome.class_names = outcome.class_names or tuple(rows[0][1:])
    return outcome


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def summarise_arm(arm, outcomes, macs_cache):
    """The `ArmSummary` of `arm` (a study.json arm entry) from its `RunOutcome`s."""
    from kerascnn.analysis.compare import run_macs

    done = [o for o in outcomes if o.finished]
    summary = ArmSummary(arm["name"], arm["label"], arm["model"], done, len(outcomes))
    if not done:
        return summary
    tests = [o.metrics["test_accuracy"] for o in done]
    summary.tests = tuple(tests)
    summary.test_mean = statistics.fmean(tests)
    summary.test_std = statistics.stdev(tests) if len(tests) > 1 else None
    summary.test_range = max(tests) - min(tests) if len(tests) > 1 else None
    summary.train_mean = _mean(o.metrics.get("final_train_accuracy") for o in done)
    summary.gap_mean = _mean(o.metrics.get("overfitting_gap") for o in done)
    summary.seconds_per_epoch = _mean(o.metrics.get("seconds_per_epoch") for o in done)
    summary.epochs = _mean(o.metrics.get("epochs_run") for o in done)
    summary.params = done[0].metrics.get("params")
    config = done[0].config
    key = (config["model"], repr(sorted(config.get("model_options", {}).items())),
           repr((config.get("resolved") or {}).get("image_shape")))
    if key not in macs_cache:
        macs_cache[key] = run_macs(config, done[0].metrics)
    summary.macs = macs_cache[key]
    return summary


def collect(study_dir, identity):
    """([RunOutcome] in plan order, [ArmSummary] in the study's arm order) of an arm study."""
    outcomes = [read_run(study_dir, r) for r in identity.get("runs", [])]
    cache = {}
    planned_arms = {o.arm for o in outcomes}
    summaries = [
        summarise_arm(arm, [o for o in outcomes if o.arm == arm["name"]], cache)
        for arm in identity.get("arms", [])
        if arm["name"] in planned_arms
    ]
    return outcomes, summaries


def mean_history(runs):
    """Per-epoch means over runs of every history column: [{epoch, key: mean}] up to the shortest run."""
    histories = [r.history for r in runs if r.history]
    if not histories:
        return []
    length = min(len(h) for h in histories)
    rows = []
    for i in range(length):
        keys = set().union(*(h[i].keys() for h in histories))
        rows.append({k: _mean(h[i].get(k) for h in histories) for k in keys})
    return rows


def summed_confusion(runs):
    """The confusion counts of `runs` added up (every seed's test pass), or None."""
    matrices = [r.confusion for r in runs if r.confusion is not None]
    return np.sum(matrices, axis=0) if matrices else None


def per_class_means(runs):
    """{class: mean accuracy over runs}, in the class order of the first run."""
    tables = [r.per_class for r in runs if r.per_class]
    if not tables:
        return {}
    return {c: _mean(t.get(c) for t in tables) for c in tables[0]}
