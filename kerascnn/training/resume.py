"""`fit MODEL [flags] --resume RUN_DIR`: the flags given beside --resume, checked against the run's.

After a crash people run the same command again with `--resume RUN_DIR`
appended. Every flag given must then equal the run's saved setting; each
that differs is named with both values in one ConfigError, before anything
is read or written. `--epochs` is the exception that extends: above the
saved budget it trains the run further (`kerascnn.training.extension`).

A flag equals its saved setting when:
- the values are equal (numbers as numbers, sizes as tuples);
- it is `--precision auto` or `--jit auto` and the run resolved that
  setting from `auto` (config.json's `resolved.auto` says so);
- it names a path (`--data-dir`, `--run-dir`, `--weights`, ...) that is the
  same file or folder as the saved one (`--run-dir` is compared with
  RUN_DIR itself);
- the run left it unset and resolved it to the given value (`--image-size`,
  `--augment`: config.json's record holds what the run used).
"""

import dataclasses
import os

from kerascnn.config import DataConfig, OptimConfig, RunConfig
from kerascnn.errors import ConfigError
from kerascnn.storage import rundir

PATH_SETTINGS = ("data_dir", "run_dir", "weights", "init_from", "export_dir")
_DATA = {f.name for f in dataclasses.fields(DataConfig)}
_OPTIM = {f.name for f in dataclasses.fields(OptimConfig)}


def saved_value(config, name, model_options=()):
    """The setting `name` (a flag's dest) of a RunConfig; a model option when `name` is in `model_options`."""
    if name in model_options:
        return config.model_options.get(name)
    if name in _DATA:
        return getattr(config.data, name)
    if name in _OPTIM:
        return getattr(config.optim, name)
    return getattr(config, name)


def flag_text(name, value):
    """How the command line writes `value` for the flag of dest `name` (`--jit`, `--no-batch-norm`, `--lr 0.1`)."""
    flag = "--" + name.replace("_", "-")
    if value is True:
        return flag
    if value is False:
        return f"--no-{flag[2:]}"
    return f"{flag} {value_text(value)}"


def value_text(value):
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _same_path(a, b):
    return a == b or (isinstance(a, str) and isinstance(b, str) and os.path.realpath(a) == os.path.realpath(b))


def _resolved_value(config, name):
    """What the run used for a setting it left unset (None when the record does not say)."""
    record = config.resolved
    if name == "image_size":
        return record.image_size
    if name == "augment":
        return (record.augmentation or {}).get("preset")
    return None


def same_setting(config, name, given, run_dir, model_options=()):
    """Whether the flag `name` given as `given` equals what the run in `run_dir` (its `config`) was started with."""
    saved = saved_value(config, name, model_options)
    if name in ("precision", "jit") and given == "auto":
        return name in (config.resolved.auto or {}) or saved == "auto"
    if name == "run_dir":
        return _same_path(given, str(run_dir))
    if name in PATH_SETTINGS:
        return _same_path(given, saved)
    if saved is None:
        saved = _resolved_value(config, name)
    if isinstance(given, (tuple, list)) or isinstance(saved, (tuple, list)):
        return saved is not None and tuple(given) == tuple(saved)
    if isinstance(given, bool) or isinstance(saved, bool):
        return given is saved
    return given == saved


def check_resume_flags(run_dir, model=None, flags=None, model_options=()):
    """The epochs to pass to `fit(resume_dir=run_dir, epochs=...)`, after checking the flags given.

    Args:
        run_dir: the run to continue.
        model: the model named on the command line, or None.
        flags: {dest: value} of the flags (None: not given).
        model_options: the dests among `flags` that are model options.

    Returns:
        The given `--epochs` when it is above the saved budget (an
        extension), else None.

    Raises:
        ConfigError naming each flag that differs from the saved run, with both values.
    """
    run_dir = rundir.require_run_dir(run_dir)
    config = RunConfig.read(run_dir)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    differ, overrides = [], []
    if model is not None and model != config.model:
        differ.append(f"model {model} (saved {config.model})")
    epochs = given.pop("epochs", None)
    if epochs is not None and epochs < config.epochs:
        differ.append(f"--epochs {epochs} (saved {config.epochs}; a run can be extended, not shortened)")
        overrides.append(flag_text("epochs", epochs))
    for name, value in given.items():
        if not same_setting(config, name, value, run_dir, model_options):
            saved = saved_value(config, name, model_options)
            differ.append(f"{flag_text(name, value)} (saved {value_text(saved)})")
            overrides.append(flag_text(name, value))
    if differ:
        overrides = " ".join(overrides)
        raise ConfigError(
            f"--resume continues {run_dir} with the settings it was started with, and "
            f"{'this differs' if len(differ) == 1 else 'these differ'}: {', '.join(differ)}; drop "
            f"{'it' if len(differ) == 1 else 'them'}, or start a new run with them: "
            f"fit --config {run_dir}{' ' + overrides if overrides else ''}"
        )
    return epochs if epochs is not None and epochs > config.epochs else None
