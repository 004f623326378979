"""The corrupt-file battery: every command that reads a file back refuses a damaged one in one line.

For each command that reads back what kerascnn wrote, and each file it
reads, the file is damaged in each way below and the command is run
in-process through `tests/battery.py`'s `refuse`: exit status 2, at most two
lines on stderr, no traceback, nothing on disk created or changed.

    missing      the file removed
    empty        zero bytes
    truncated    its first half (a write cut short)
    garbage      binary bytes that are not the format
    type         valid JSON of the wrong type (a list for an object), a
                 .pth holding a list, a zip that is not a Keras model
    schema       the right format with a key (or column, or label) removed
                 or a value of the wrong type, chosen per file so that the
                 command needs it
    unreadable   chmod 000; we run as root, which reads anyway, so when
                 `os.access` still says readable the one low-level open of
                 `kerascnn.storage.readback` (`_open`) is made to raise
                 PermissionError for that path, as it would for a user
    folder       a folder where the file should be
    file         (directory arguments and backup/) a file where the folder should be

The valid fixtures are built once for the module: one tiny finished run
(vgg8 at 1/8 width, 64 generated images, one epoch) with its export, a
one-trial `tune` results folder, a study folder assembled from the run with
the study code itself (`prepare`, the run copied in as the first seed, the
second seed recorded as failed, `write_report`), and a torchvision resnet18
state dict. Each case copies only the fixture it damages.

What is sampled rather than crossed (to keep the module under a minute on a
busy 2-core machine): the damage applies to the files each command reads,
not every file to every command. Every damage is applied to each file
through the first command that reads it with a given reader (a run's
config.json and best.keras through `evaluate RUN`, metrics.json and
history.csv through `compare`, an export's files through `predict`, a
trial's files through `tune` and `tune-report`, a study's through
`study-report`, the study file through `study`, backup/ and history.csv also
through `fit --resume`); the other commands that read the same file the same
way get three or four of the damages, taken in turn from a place fixed by
the command and file. A "missing" file is left out where absence is a normal
state the command handles without refusing: metrics.json of a run being
resumed or of a study's run (an unfinished run); a trial's
kerascnn_trial.json (a trial not measured yet) and, for tune, its trial.json
(a trial being created); a study run's .failed note (a run that did not
fail); per_class_accuracy.csv and confusion_matrix.csv (runs from before
they were written); search.json for tune-report (the summary then says "?").
tune-report skips a trial.json that is missing, empty or cut short
(KerasTuner writes it in place, so a report taken while a trial starts or
ends sees it so): checked as a skip, not a refusal. The hypothesis test
draws truncation points and garbage contents (derandomised, four examples)
for one command per format (CSV, JSON, lines, .keras). Not covered: backup
weights that are a whole HDF5 file of another model (Keras finds that out
only once training starts).
"""

import contextlib
import errno
import json
import os
import pathlib
import shutil
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from battery import Tally, refuse, run_in_process, working_directory
from kerascnn.storage import readback

TALLY = Tally("corrupt-file battery")
TINY = dict(dataset="synthetic", limit_train=64, batch_size=32, epochs=1, precision="float32",
            model_options={"width_multiplier": 0.125})
TUNE_ARGS = ["tune", "vgg8", "--dataset", "synthetic", "--limit-train", "64", "--epochs", "1",
             "--width-multiplier", "0.125", "--max-trials", "1", "--results-dir", "tune"]
STUDY = """
[study]
name = "tiny"
title = "A tiny study"
seeds = [1, 2]

[settings]
model_options = { width_multiplier = 0.125 }
dataset = "synthetic"
limit_train = 64
batch_size = 32
epochs = 1
precision = "float32"

[budget.tiny]
description = "one epoch of 64 generated images"

[[arm]]
name = "vgg"
model = "vgg8"
"""
FIRST, FAILED = "vgg-seed1", "vgg-seed2"


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """{name: path} of the valid fixtures, built once."""
    from kerascnn.config import RunConfig
    from kerascnn.studies import folder as study_folder
    from kerascnn.studies.catalog import find_study
    from kerascnn.studies.plan import plan_study
    from kerascnn.studies.report import write_report
    from kerascnn.training.fit import fit
    from tuning.search import SearchRequest, run_search

    root = tmp_path_factory.mktemp("fixtures")
    quiet = dict(log=lambda *_: None, verbose=0)
    result = fit(RunConfig.from_flags("vgg8", run_dir=str(root / "run"), export=True,
                                      export_dir=str(root / "saved_models"), **TINY), **quiet)
    base = RunConfig.from_flags("vgg8", **{k: v for k, v in TINY.items() if k not in ("batch_size", "precision")})
    run_search(SearchRequest(base, max_trials=1, results_dir=str(root / "tune")), **quiet)

    (root / "tiny.toml").write_text(STUDY)
    out = root / "study"
    with working_directory(root):  # as `study tiny.toml --out study` in a case's folder names them
        study_folder.prepare("study", plan_study(find_study("tiny.toml"), "tiny"))
    shutil.copytree(root / "run", study_folder.run_dir(out, FIRST))
    study_folder.record_failure(out, FAILED, "diverged: the loss was nan at epoch 1, batch 1")
    write_report(out, log=lambda *_: None)

    import torch
    import torchvision_layouts

    torch.save(torchvision_layouts.build("resnet18", num_classes=10).state_dict(), root / "resnet18.pth")
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "image.png")
    paths = {"run": root / "run", "export": result.export_dir, "tune": root / "tune", "study": out,
             "toml": root / "tiny.toml", "pth": root / "resnet18.pth", "image": root / "image.png"}
    yield paths
    TALLY.report()


def _copy(src, dst):
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)
    return dst


# --- damage ----------------------------------------------------------------------


def _write(path, data):
    path = pathlib.Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    path.write_bytes(data)


def _json_edit(edit):
    def damage(path):
        value = json.loads(path.read_text())
        edit(value)
        path.write_text(json.dumps(value))
    return damage


def _csv_edit(edit):
    def damage(path):
        lines = path.read_text().splitlines()
        path.write_text("\n".join(edit(lines)) + "\n")
    return damage


def _drop_column(name):
    def edit(lines):
        header = lines[0].split(",")
        i = header.index(name)
        return [",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in lines]
    return edit


def _not_a_number(lines):
    cells = lines[1].split(",")
    cells[-1] = "lots"
    return [lines[0], ",".join(cells), *lines[2:]]


def _zip_without_model(path):
    path.unlink()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "a zip archive, but no Keras model in it")


def _keras_with_empty_config(path):
    path.unlink()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("metadata.json", "{}")


def _torch_save(value):
    def damage(path):
        import torch

        torch.save(value(path), path)
    return damage


def _without_classifier(path):
    import torch

    tensors = torch.load(path, weights_only=True)
    del tensors["fc.weight"]
    return tensors


def _remove(*keys):
    def edit(d):
        for key in keys:
            node = d
            *parents, last = key.split(".")
            for p in parents:
                node = node[p]
            del node[last]
    return edit


def _set(key, value):
    def edit(d):
        node = d
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


GENERIC = {
    "missing": lambda p: shutil.rmtree(p) if p.is_dir() else p.unlink(),
    "empty": lambda p: _write(p, b""),
    "truncated": lambda p: _write(p, p.read_bytes()[: len(p.read_bytes()) // 2]),
    "garbage": lambda p: _write(p, bytes(np.random.default_rng(len(str(p))).integers(0, 256, 300, np.uint8))),
    "folder": lambda p: _folder(p),
}


def _folder(path):
    path.unlink()
    path.mkdir()
    (path / "inside.txt").write_text("a folder where a file should be\n")
JSON_TYPE = {"type": lambda p: p.write_text("[1, 2, 3]\n")}


def damages(*schema, kind="json", skip=()):
    """{name: damage(path)} for a file: the generic ones, the wrong type of its `kind`, and its `schema` edits."""
    out = dict(GENERIC)
    if kind == "json":
        out.update(JSON_TYPE)
    elif kind == "keras":
        out["type"] = _zip_without_model
        out["schema"] = _keras_with_empty_config
    elif kind == "pth":
        out["type"] = _torch_save(lambda p: [1, 2, 3])
    for i, edit in enumerate(schema):
        out[f"schema{i + 1}" if len(schema) > 1 else "schema"] = edit
    out["unreadable"] = "unreadable"
    return {k: v for k, v in out.items() if k not in skip}


CONFIG = damages(_json_edit(_set("model", 5)), _json_edit(_remove("resolved.class_names")))
METRICS = damages(_json_edit(_remove("test_accuracy")), _json_edit(_set("epochs_run", "one")))
HISTORY = damages(_csv_edit(_drop_column("epoch")), _csv_edit(_not_a_number), kind="csv")
BEST = damages(kind="keras")
BACKUP_META = damages(_json_edit(_set("epoch", "one")), _json_edit(_remove("epoch")))
MANIFEST = damages(_json_edit(_remove("class_names")), _json_edit(_set("preprocessing.image_size", "big")))
LABELS = damages(_csv_edit(lambda lines: lines[:-1]), kind="lines")
TRIAL = damages(_json_edit(_remove("status")), _json_edit(_set("hyperparameters", [])))
EXTRAS = damages(_json_edit(_set("test_accuracy", {"high": True})), skip=("missing",))
IDENTITY = damages(_json_edit(_remove("model")))
ORACLE = damages(_json_edit(_remove("ongoing_trials")))
TUNER = damages(skip=("garbage", "type", "folder"))  # {}: what the other files show of these is enough
STUDY_JSON = damages(_json_edit(_remove("title")), _json_edit(_set("runs", [5])))
FAILURE = damages(kind="text", skip=("missing",))
PER_CLASS = damages(_csv_edit(_not_a_number), kind="csv", skip=("missing",))
CONFUSION = damages(_csv_edit(lambda lines: lines[:-1]), kind="csv", skip=("missing",))
TOML = damages(lambda p: p.write_text('[study]\nname = 5\ntitle = "x"\n'), kind="toml")
PTH = damages(_torch_save(_without_classifier), kind="pth")

# Only the schema edits each command needs: the serving record for the serving commands.
SERVING_ONLY = {"schema2"}


# --- the cases ------------------------------------------------------------------


RUN, EXPORT, TUNE, STUDY_DIR = "run", "export", "tune", "study"
RUN_FILES = {"config.json": CONFIG, "best.keras": BEST}


def _cases():
    """(command, fixture, argv, file inside the fixture, damages, sample) for each command and each file it reads.

    `sample` None applies every damage: the command is the first (or only) one to read the file through
    its reader. A number applies that many, in turn: another command reading the same file the same way.
    """
    resume = ["fit", "--resume", "run", "--epochs", "2"]
    evaluate_run = ["evaluate", "run"]
    trial = "search/trial_0"
    study = ["study", "tiny.toml", "--budget", "tiny", "--out", "study"]
    sreport = ["study-report", "study"]
    predict = ["predict", "export", "image.png"]
    compare = ["compare", "run", "run2"]
    report = ["tune-report", "tune"]
    # A run directory.
    yield "evaluate RUN", RUN, evaluate_run, "config.json", CONFIG, None
    yield "evaluate RUN", RUN, evaluate_run, "best.keras", BEST, None
    yield "fit --resume", RUN, resume, "config.json", _drop(CONFIG, SERVING_ONLY), None
    yield "fit --resume", RUN, resume, "metrics.json", _drop(METRICS, {"missing"}), 4
    # Whether history.csv may be missing depends on the run having finished: every damage here too.
    yield "fit --resume", RUN, resume, "history.csv", HISTORY, None
    yield "fit --resume", RUN, resume, "backup/training_metadata.json", BACKUP_META, None
    yield "fit --resume", RUN, resume, "backup/latest.weights.h5", damages(kind="h5"), None
    yield "fit --config", RUN, ["fit", "--config", "run/config.json"], "config.json", _drop(CONFIG, SERVING_ONLY), 4
    yield "export", RUN, ["export", "run"], "config.json", CONFIG, 3
    yield "export", RUN, ["export", "run"], "best.keras", BEST, 3
    yield "compare", RUN, compare, "config.json", _drop(CONFIG, SERVING_ONLY), 3
    yield "compare", RUN, compare, "metrics.json", METRICS, None
    yield "compare", RUN, compare, "history.csv", HISTORY, None
    yield "visualize RUN", RUN, ["visualize", "run"], "config.json", CONFIG, 3
    yield "visualize RUN", RUN, ["visualize", "run"], "best.keras", BEST, 3
    yield "summary", RUN, ["summary", "run"], "config.json", _drop(CONFIG, SERVING_ONLY), 3
    # An export.
    yield "predict", EXPORT, predict, "kerascnn.json", MANIFEST, None
    yield "predict", EXPORT, predict, "labels.txt", LABELS, None
    yield "evaluate EXPORT", EXPORT, ["evaluate", "export"], "kerascnn.json", MANIFEST, 3
    yield "evaluate EXPORT", EXPORT, ["evaluate", "export"], "labels.txt", LABELS, 3
    yield "visualize EXPORT", EXPORT, ["visualize", "export"], "kerascnn.json", _drop(MANIFEST, {"schema1"}), 3
    yield "visualize EXPORT", EXPORT, ["visualize", "export"], "model.keras", BEST, 3
    # A tune results folder.
    yield "tune", TUNE, TUNE_ARGS, f"{trial}/trial.json", _drop(TRIAL, {"missing"}), None
    yield "tune", TUNE, TUNE_ARGS, "search/oracle.json", ORACLE, None
    yield "tune", TUNE, TUNE_ARGS, "search/tuner0.json", TUNER, None
    yield "tune", TUNE, TUNE_ARGS, "search.json", IDENTITY, 3
    yield "tune", TUNE, TUNE_ARGS, f"{trial}/kerascnn_trial.json", EXTRAS, 3
    yield "tune-report", TUNE, report, f"{trial}/trial.json", _drop(TRIAL, {"missing", "empty", "truncated"}), None
    yield "tune-report", TUNE, report, f"{trial}/kerascnn_trial.json", EXTRAS, None
    yield "tune-report", TUNE, report, "search.json", _drop(IDENTITY, {"missing"}), None  # the summary says "?"
    # A study folder, and a study file.
    yield "study-report", STUDY_DIR, sreport, "study.json", STUDY_JSON, None
    yield "study-report", STUDY_DIR, sreport, f"runs/{FAILED}.failed", FAILURE, None
    yield "study-report", STUDY_DIR, sreport, f"runs/{FIRST}/config.json", _drop(CONFIG, SERVING_ONLY), 3
    # Without metrics.json a study's run is interrupted, not damaged: the report shows it so.
    yield "study-report", STUDY_DIR, sreport, f"runs/{FIRST}/metrics.json", _drop(METRICS, {"missing"}), 3
    yield "study-report", STUDY_DIR, sreport, f"runs/{FIRST}/history.csv", HISTORY, 3
    yield "study-report", STUDY_DIR, sreport, f"runs/{FIRST}/per_class_accuracy.csv", PER_CLASS, None
    yield "study-report", STUDY_DIR, sreport, f"runs/{FIRST}/confusion_matrix.csv", CONFUSION, None
    yield "study", "toml", study, "", TOML, None
    yield "study", STUDY_DIR, study, "study.json", STUDY_JSON, 3
    yield "study", STUDY_DIR, study, f"runs/{FAILED}.failed", FAILURE, 3
    yield "study", STUDY_DIR, study, f"runs/{FIRST}/metrics.json", _drop(METRICS, {"missing"}), 3
    # A torchvision checkpoint.
    weights = ["import-weights", "torchvision", "resnet18", "resnet18.pth", "--output", "out.keras"]
    yield "import-weights", "pth", weights, "", PTH, None


def _sampled(command, file, table, sample):
    """`sample` of the damages in `table` (all when None), taken in turn from a place fixed by the command and file."""
    names = list(table)
    if sample is None or sample >= len(names):
        return table
    start = sum(map(ord, command + file)) % len(names)
    return {n: table[n] for n in (names * 2)[start:start + sample]}


def _drop(table, names):
    return {k: v for k, v in table.items() if k not in names}


FOLDER_ARGUMENTS = [  # (command, argv) whose folder argument is replaced by a file
    ("fit --resume", ["fit", "--resume", "run", "--epochs", "2"], "run"),
    ("evaluate RUN", ["evaluate", "run"], "run"),
    ("export", ["export", "run"], "run"),
    ("compare", ["compare", "run", "run2"], "run"),
    ("visualize RUN", ["visualize", "run"], "run"),
    ("evaluate EXPORT", ["evaluate", "export"], "export"),
    ("predict", ["predict", "export", "image.png"], "export"),
    ("tune-report", ["tune-report", "tune"], "tune"),
    ("study-report", ["study-report", "study"], "study"),
    ("fit --resume", ["fit", "--resume", "run", "--epochs", "2"], "run/backup"),
    ("tune-report", ["tune-report", "tune"], "tune/search"),
    ("tune", TUNE_ARGS, "tune/search"),
]

CASES = [
    pytest.param(command, fixture, argv, file, name, damage, id=f"{command}|{file or fixture}|{name}")
    for command, fixture, argv, file, table, sample in _cases()
    for name, damage in _sampled(command, file, table, sample).items()
]

# The fixture folder each case copies, by the name the command line uses.
COPIED = {RUN: ("run",), EXPORT: ("export",), TUNE: ("tune",), STUDY_DIR: ("study",), "toml": ("tiny.toml",),
          "pth": ("resnet18.pth",)}


def _case_dir(fixtures, fixture, argv):
    case = pathlib.Path(tempfile.mkdtemp(prefix="case-", dir=fixtures["run"].parent))
    sources = {"run": fixtures["run"], "export": fixtures["export"], "tune": fixtures["tune"],
               "study": fixtures["study"], "tiny.toml": fixtures["toml"], "resnet18.pth": fixtures["pth"]}
    needed = set(COPIED[fixture]) | {a for a in argv if a in sources}
    if fixture == STUDY_DIR:
        needed.add("tiny.toml")
    for name in needed:
        _copy(sources[name], case / name)
    if "run2" in argv:
        _copy(fixtures["run"], case / "run2")
    if "image.png" in argv:
        _copy(fixtures["image"], case / "image.png")
    return case


@contextlib.contextmanager
def unreadable(path):
    """`path` unreadable: chmod 000, and for root (who reads anyway) readback's open refusing it."""
    mode = path.stat().st_mode
    os.chmod(path, 0)
    real = readback._open
    if os.access(path, os.R_OK):
        target = os.path.realpath(path)

        def refusing(p, mode="rb"):
            if os.path.realpath(p) == target:
                raise PermissionError(errno.EACCES, "Permission denied", str(p))
            return real(p, mode)

        readback._open = refusing
    try:
        yield
    finally:
        readback._open = real
        os.chmod(path, mode)


def _target(case, fixture, file):
    base = case / COPIED[fixture][0]
    return base / file if file else base


@pytest.mark.parametrize("command, fixture, argv, file, name, damage", CASES)
def test_a_damaged_file_is_refused_in_one_line(fixtures, command, fixture, argv, file, name, damage):
    case = _case_dir(fixtures, fixture, argv)
    target = _target(case, fixture, file)
    assert target.exists(), f"the fixture has no {target}"
    try:
        if damage == "unreadable":
            with unreadable(target):
                err = refuse(argv, cwd=case)
        else:
            damage(target)
            err = refuse(argv, cwd=case)
        assert str(pathlib.Path(file).name or target.name) in err or name == "missing", err
        TALLY.add(command)
    finally:
        shutil.rmtree(case, ignore_errors=True)


@pytest.mark.parametrize("command, argv, folder", FOLDER_ARGUMENTS, ids=[f"{c}|{f}" for c, _, f in FOLDER_ARGUMENTS])
def test_a_file_where_a_folder_should_be_is_refused_in_one_line(fixtures, command, argv, folder):
    fixture = folder.split("/")[0]
    case = _case_dir(fixtures, fixture, argv)
    try:
        target = case / folder
        shutil.rmtree(target)
        target.write_text("not a folder\n")
        refuse(argv, cwd=case)
        TALLY.add(command)
    finally:
        shutil.rmtree(case, ignore_errors=True)


@pytest.mark.parametrize("name", ["missing", "empty", "truncated"])
def test_tune_report_skips_a_trial_json_being_written(fixtures, name):
    """KerasTuner writes trial.json in place: a report taken meanwhile leaves that trial out, and says so by its count."""
    case = _case_dir(fixtures, TUNE, ["tune-report", "tune"])
    try:
        GENERIC[name](case / "tune/search/trial_0/trial.json")
        code, out, err = run_in_process(["tune-report", "tune"], case)
        assert code == 0 and "Traceback" not in err, err
        assert out.startswith("0 trials;"), out
        TALLY.add("tune-report")
    finally:
        shutil.rmtree(case, ignore_errors=True)


# --- drawn damage -------------------------------------------------------------------

DRAWN = settings(derandomize=True, max_examples=4, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DRAWN_FILES = [  # (command, fixture, argv, file): one per format
    ("compare", RUN, ["compare", "run", "run2"], "history.csv"),
    ("evaluate RUN", RUN, ["evaluate", "run"], "config.json"),
    ("predict", EXPORT, ["predict", "export", "image.png"], "labels.txt"),
    ("study-report", STUDY_DIR, ["study-report", "study"], f"runs/{FIRST}/confusion_matrix.csv"),
    ("evaluate RUN", RUN, ["evaluate", "run"], "best.keras"),
]


@pytest.mark.parametrize("command, fixture, argv, file", DRAWN_FILES, ids=[f"{c}|{f}" for c, _, _, f in DRAWN_FILES])
@DRAWN
@given(cut=st.floats(0.02, 0.98), garbage=st.binary(min_size=1, max_size=200))
def test_drawn_cuts_and_garbage_are_refused(fixtures, command, fixture, argv, file, cut, garbage):
    case = _case_dir(fixtures, fixture, argv)
    try:
        target = _target(case, fixture, file)
        data = target.read_bytes()
        # A cut anywhere short of the last byte (which is the final newline: without it the file is whole).
        target.write_bytes(data[: min(int(len(data) * cut), len(data) - 2)])
        refuse(argv, cwd=case)
        target.write_bytes(garbage if garbage.strip() else b"\x00" + garbage)
        refuse(argv, cwd=case)
        TALLY.add(command, 2)
    finally:
        shutil.rmtree(case, ignore_errors=True)
