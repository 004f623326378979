"""Study files: a small TOML format naming the arms of a comparison, its seeds, data and budgets.

A study compares a few ordinary `fit` runs (the arms) trained the same way
except for what the study varies, or runs one KerasTuner search (`kind =
"search"`). Read with Python's `tomllib`; every key is checked here, before
anything runs, and a mistake raises `StudyFileError` (a `UserError`: one line
on stderr, exit status 2) naming the file, the key and the problem, e.g.

    study file lrn.toml: arm[2].model: unknown model 'alexnet_cifr' (did you mean alexnet_cifar?)

The format (every table optional unless marked):

    [study]                      required
    name = "lrn"                 required; letters, digits, - _ .
    title = "..."                required; the report's heading
    question = "..."             one line: what the study asks
    references = ["..."]         papers the arms come from
    seeds = [0, 1]               default seeds of every arm (default [0])
    figures = ["receptive_field", "filters", "feature_maps", "gradcam", "memory"]
                                 (memory: a table and a figure of each arm's
                                 ESTIMATED GPU training memory and batch limits)
    baseline = "ARM"             the arm the others are compared with
    kind = "arms"                "arms" (default) or "search"

    [settings]                   every arm: `fit` settings by flag name, with
    recipe = "paper"             underscores (lr, epochs, batch_size, augment,
    model_options = {...}        image_size, val_split, ...) and builder options

    [budget.smoke]               one table per budget (smoke, short, full, or
    description = "..."          any name); its settings win over the arms'
    seeds = [0]                  (a budget is a resource limit); its
    epochs = 1                   model_options reach only the arms whose
    model_options = {...}        builder takes them

    [[arm]]                      required for kind "arms", at least one
    name = "no_lrn"              required, unique
    model = "alexnet"            required, a registered model
    label = "..."                the name in tables and legends (default: name)
    recipe = "paper"             a recipe of the model (`list` shows them)
    model_options = {...}        builder options (use_lrn, batch_norm, ...)
    init_from = "arm:vgg11"      VGG incremental depth from an earlier arm's run (same seed)
    requires = ["ENV_VAR"]       environment variables that must name existing files;
                                 "${ENV_VAR}" in a value is replaced by the file; an
                                 arm whose files are missing is skipped, and said so
    lr = 0.01 ...                any other `fit` setting

    [search]                     required for kind "search": a `tune` search
    model = "alexnet_cifar"      space = "seed-grid", tuner = "grid", and
                                 tune's data and trial settings; budgets may
                                 set max_trials and max_epochs

Settings are applied in this order, later winning: [settings], the arm, the
budget, then the command line's data flags (`study --data-dir`).
"""

import dataclasses
import os
import pathlib
import re
import tomllib

from kerascnn.config import DataConfig, OptimConfig, RunConfig
from kerascnn.errors import ConfigError, UserError

KINDS = ("arms", "search")
FIGURES = ("receptive_field", "filters", "feature_maps", "gradcam", "memory")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ARM_REFERENCE = "arm:"

# `fit` settings a study may set, by RunConfig.from_flags name. Left out: the
# seed (from `seeds`), where the run goes (the study folder decides), export,
# and the multi-worker cluster, which belong to a command line, not a study.
_RUN_SETTINGS = (
    "epochs", "patience", "precision", "jit", "devices", "cpu_replicas", "model_parallel", "sync_bn",
    "scale_lr", "weights", "init_from", "freeze_backbone", "finetune_lr", "whiten",
    "whiten_bias_epochs",
)
SETTINGS = tuple(
    [f.name for f in dataclasses.fields(DataConfig)] + [f.name for f in dataclasses.fields(OptimConfig)]
) + _RUN_SETTINGS
# What `tune` takes for every trial (tuning.cli.RUN_SETTINGS), and the search's own keys.
SEARCH_SETTINGS = (
    "dataset", "data_dir", "image_size", "limit_train", "augment", "epochs", "patience", "precision", "jit",
)
SEARCH_KEYS = ("model", "space", "tuner", "model_options") + SEARCH_SETTINGS
BUDGET_SEARCH_KEYS = ("max_trials", "max_epochs")

STUDY_KEYS = ("name", "title", "question", "references", "seeds", "figures", "baseline", "kind")
ARM_KEYS = ("name", "model", "label", "recipe", "model_options", "requires") + SETTINGS
BUDGET_KEYS = ("description", "seeds", "model_options") + SETTINGS + BUDGET_SEARCH_KEYS
TOP_KEYS = ("study", "settings", "budget", "arm", "search")


class StudyFileError(ConfigError):
    """A study file that cannot be used: the message names the file, the key and the problem."""


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm: a model and the settings that set it apart.

    Attributes:
        name: unique name (the run directories are `<name>-seed<seed>`).
        model: registered model name.
        label: how tables and legends name it.
        recipe: the model's recipe (None: the study's, else the model's default).
        settings: `fit` settings of this arm (flag names with underscores).
        model_options: builder keyword arguments.
        requires: environment variables that must name existing files.
    """

    name: str
    model: str
    label: str
    recipe: str = None
    settings: dict = dataclasses.field(default_factory=dict)
    model_options: dict = dataclasses.field(default_factory=dict)
    requires: tuple = ()


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much a study trains: settings and seeds laid over every arm."""

    name: str
    description: str = ""
    seeds: tuple = None
    settings: dict = dataclasses.field(default_factory=dict)
    model_options: dict = dataclasses.field(default_factory=dict)
    search: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """The `tune` search of a `kind = "search"` study."""

    model: str
    space: str = "seed-grid"
    tuner: str = "grid"
    settings: dict = dataclasses.field(default_factory=dict)
    model_options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Study:
    """A parsed, checked study file (see the module docstring)."""

    name: str
    title: str
    source: str
    text: str
    question: str = ""
    references: tuple = ()
    seeds: tuple = (0,)
    figures: tuple = ()
    baseline: str = None
    kind: str = "arms"
    settings: dict = dataclasses.field(default_factory=dict)
    model_options: dict = dataclasses.field(default_factory=dict)
    budgets: dict = dataclasses.field(default_factory=dict)
    arms: tuple = ()
    search: SearchSpec = None

    def arm(self, name):
        return next(a for a in self.arms if a.name == name)

    def budget(self, name):
        """The `Budget` called `name`; StudyFileError listing the study's budgets otherwise."""
        if name not in self.budgets:
            raise StudyFileError(
                f"study {self.name} has no budget {name!r}; its budgets: {', '.join(self.budgets)}"
            )
        return self.budgets[name]


# --- parsing -----------------------------------------------------------------


class _Reader:
    """Checks values of one study file, naming the file and key in every error."""

    def __init__(self, source):
        self.source = source

    def fail(self, key, problem):
        raise StudyFileError(f"study file {self.source}: {key}: {problem}")

    def table(self, value, key):
        if not isinstance(value, dict):
            self.fail(key, f"must be a table, got {_show(value)}")
        return value

    def known(self, table, key, allowed):
        for k in table:
            if k not in allowed:
                hint = _close(k, allowed)
                self.fail(f"{key}.{k}" if key else k, "unknown key" + (f" (did you mean {hint}?)" if hint else ""))

    def text(self, value, key, pattern=None):
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, got {_show(value)}")
        if pattern is not None and not pattern.match(value):
            self.fail(key, f"{value!r} must start with a letter or digit and hold only letters, digits, - _ .")
        return value

    def texts(self, value, key):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of strings, got {_show(value)}")
        return tuple(value)

    def seeds(self, value, key):
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
            self.fail(key, f"must be a non-empty list of integers >= 0, got {_show(value)}")
        if len(set(value)) != len(value):
            self.fail(key, f"names a seed twice: {value}")
        return tuple(value)


def _show(value):
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def _close(name, allowed):
    import difflib

    found = difflib.get_close_matches(name, list(allowed), n=1)
    return found[0] if found else None


def _split_settings(reader, table, key):
    """(settings, model_options) of a table whose other keys were already taken out."""
    settings = {k: v for k, v in table.items() if k in SETTINGS}
    options = table.get("model_options", {})
    reader.table(options, f"{key}.model_options")
    return settings, dict(options)


def load_study(path):
    """Read and check the study file at `path`; a `Study`, or StudyFileError."""
    from kerascnn.storage import readback

    path = pathlib.Path(path)
    if not path.exists() and not path.is_symlink():
        raise StudyFileError(f"study file {path} does not exist; name a shipped study or a .toml file")
    # A folder, an unreadable or empty file, bytes that are not text: one line naming the file.
    text = readback.read_text(path, "pass a study file (TOML, see `kerascnn/studies/files/`)")
    return parse_study(text, path.name, str(path))


def parse_study(text, display_name, source=None):
    """A checked `Study` from TOML `text`; errors name the file as `display_name`."""
    reader = _Reader(display_name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise StudyFileError(f"study file {display_name}: not valid TOML: {e}") from None
    reader.known(data, "", TOP_KEYS)
    if "study" not in data:
        reader.fail("study", "missing: the file needs a [study] table with name and title")
    head = reader.table(data["study"], "study")
    reader.known(head, "study", STUDY_KEYS)
    for required in ("name", "title"):
        if required not in head:
            reader.fail(f"study.{required}", "missing")
    kind = head.get("kind", "arms")
    if kind not in KINDS:
        reader.fail("study.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    figures = reader.texts(head.get("figures", []), "study.figures")
    for i, figure in enumerate(figures):
        if figure not in FIGURES:
            reader.fail(f"study.figures[{i}]", f"unknown figure {figure!r}; choose from {', '.join(FIGURES)}")

    common = reader.table(data.get("settings", {}), "settings")
    reader.known(common, "settings", SETTINGS + ("recipe", "model_options"))
    settings, options = _split_settings(reader, common, "settings")
    if "recipe" in common:
        settings["recipe"] = reader.text(common["recipe"], "settings.recipe")

    budgets = {}
    for name, table in reader.table(data.get("budget", {}), "budget").items():
        key = f"budget.{name}"
        reader.text(name, key, NAME)
        table = reader.table(table, key)
        reader.known(table, key, BUDGET_KEYS)
        b_settings, b_options = _split_settings(reader, table, key)
        for k, v in b_settings.items():
            problem = _type_problem(k, v)
            if problem:
                reader.fail(f"{key}.{k}", problem)
        search = {k: table[k] for k in BUDGET_SEARCH_KEYS if k in table}
        for k, v in search.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                reader.fail(f"{key}.{k}", f"must be a positive integer, got {_show(v)}")
            if kind != "search":
                reader.fail(f"{key}.{k}", 'is for search studies (kind = "search")')
        budgets[name] = Budget(
            name,
            reader.text(table["description"], f"{key}.description") if "description" in table else "",
            reader.seeds(table["seeds"], f"{key}.seeds") if "seeds" in table else None,
            b_settings, b_options, search,
        )
    if not budgets:
        reader.fail("budget", "missing: define at least one budget, e.g. [budget.smoke]")

    study = Study(
        name=reader.text(head["name"], "study.name", NAME),
        title=reader.text(head["title"], "study.title"),
        source=source or display_name,
        text=text,
        question=reader.text(head["question"], "study.question") if "question" in head else "",
        references=reader.texts(head.get("references", []), "study.references"),
        seeds=reader.seeds(head["seeds"], "study.seeds") if "seeds" in head else (0,),
        figures=figures,
        baseline=head.get("baseline"),
        kind=kind,
        settings=settings,
        model_options=options,
        budgets=budgets,
    )
    if kind == "search":
        study = _with_search(reader, data, study)
    else:
        study = _with_arms(reader, data, study)
    _check_resolved(reader, study)
    return study


def _with_arms(reader, data, study):
    if "search" in data:
        reader.fail("search", 'is for search studies (kind = "search"); this study has [[arm]] tables')
    raw = data.get("arm")
    if not isinstance(raw, list) or not raw:
        reader.fail("arm", "missing: a study needs at least one [[arm]] with a name and a model")
    arms = []
    for i, table in enumerate(raw):
        key = f"arm[{i + 1}]"
        table = reader.table(table, key)
        reader.known(table, key, ARM_KEYS)
        for required in ("name", "model"):
            if required not in table:
                reader.fail(f"{key}.{required}", "missing")
        name = reader.text(table["name"], f"{key}.name", NAME)
        if any(a.name == name for a in arms):
            reader.fail(f"{key}.name", f"arm {name!r} is named twice")
        settings, options = _split_settings(reader, table, key)
        requires = reader.texts(table.get("requires", []), f"{key}.requires")
        for j, var in enumerate(requires):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
                reader.fail(f"{key}.requires[{j + 1}]", f"{var!r} is not an environment variable name")
        for k, v in settings.items():
            for var in ENV_REFERENCE.findall(v) if isinstance(v, str) else ():
                if var not in requires:
                    reader.fail(f"{key}.{k}", f"uses ${{{var}}}; list {var} in requires")
        init = settings.get("init_from")
        if isinstance(init, str) and init.startswith(ARM_REFERENCE):
            target = init[len(ARM_REFERENCE):]
            if not any(a.name == target for a in arms):
                reader.fail(f"{key}.init_from", f"{init!r} must name an arm listed before this one")
        arms.append(Arm(
            name=name,
            model=reader.text(table["model"], f"{key}.model"),
            label=reader.text(table["label"], f"{key}.label") if "label" in table else name,
            recipe=reader.text(table["recipe"], f"{key}.recipe") if "recipe" in table else None,
            settings=settings,
            model_options=options,
            requires=requires,
        ))
    study = dataclasses.replace(study, arms=tuple(arms))
    if study.baseline is not None and not any(a.name == study.baseline for a in arms):
        reader.fail("study.baseline", f"{study.baseline!r} is not the name of an arm")
    return study


def _with_search(reader, data, study):
    if "arm" in data:
        reader.fail("arm", 'a search study (kind = "search") has a [search] table, not [[arm]] tables')
    if "search" not in data:
        reader.fail("search", 'missing: a search study needs a [search] table with a model')
    table = reader.table(data["search"], "search")
    reader.known(table, "search", SEARCH_KEYS)
    if "model" not in table:
        reader.fail("search.model", "missing")
    for key in ("figures",):
        if getattr(study, key):
            reader.fail(f"study.{key}", "figures of trained models are for arm studies; a search reports its trials")
    for name, budget in study.budgets.items():
        for k in budget.settings:
            if k not in SEARCH_SETTINGS:
                reader.fail(f"budget.{name}.{k}", f"a search takes only {', '.join(SEARCH_SETTINGS)}")
        for k in budget.model_options:
            if k != "width_multiplier":
                reader.fail(f"budget.{name}.model_options.{k}", "a search takes only width_multiplier")
    options = reader.table(table.get("model_options", {}), "search.model_options")
    for k in options:
        if k != "width_multiplier":
            reader.fail(f"search.model_options.{k}", "a search takes only width_multiplier (tune --width-multiplier)")
    spec = SearchSpec(
        model=reader.text(table["model"], "search.model"),
        space=reader.text(table.get("space", "seed-grid"), "search.space"),
        tuner=reader.text(table.get("tuner", "grid"), "search.tuner"),
        settings={k: v for k, v in table.items() if k in SEARCH_SETTINGS},
        model_options=dict(options),
    )
    return dataclasses.replace(study, search=spec)


# --- checks that need the model table and the configuration classes -----------


def _check_resolved(reader, study):
    """Every model, option and setting, checked as `fit` (or `tune`) would check them."""
    from kerascnn.models import check_model_name, model_arguments
    from kerascnn.recipes import get_recipe

    def check_model(model, key):
        try:
            check_model_name(model)
        except UserError as e:
            reader.fail(key, str(e))

    def check_options(model, options, key):
        accepted = model_arguments(model)
        for k in options:
            if k not in accepted or k in ("num_classes", "input_shape", "name", "include_top"):
                reader.fail(f"{key}.{k}", f"model {model} takes no option {k!r}")

    if study.kind == "search":
        spec = study.search
        check_model(spec.model, "search.model")
        check_options(spec.model, spec.model_options, "search.model_options")
        from tuning.spaces import get_space
        from tuning.tuners import TUNERS

        try:
            get_space(spec.space)
        except UserError as e:
            reader.fail("search.space", str(e))
        if spec.tuner not in TUNERS:
            reader.fail("search.tuner", f"must be one of {', '.join(TUNERS)}, got {spec.tuner!r}")
        _check_settings(reader, spec.model, None, spec.settings, "search")
        for name, budget in study.budgets.items():
            _check_settings(reader, spec.model, None, {**spec.settings, **budget.settings}, f"budget.{name}")
        return

    for i, arm in enumerate(study.arms):
        key = f"arm[{i + 1}]"
        check_model(arm.model, f"{key}.model")
        check_options(arm.model, {**study.model_options}, "settings.model_options")
        check_options(arm.model, arm.model_options, f"{key}.model_options")
        recipe = arm.recipe or study.settings.get("recipe")
        if recipe is not None:
            try:
                get_recipe(arm.model, recipe)
            except UserError as e:
                reader.fail(f"{key}.recipe" if arm.recipe else "settings.recipe", str(e))
        base = {k: v for k, v in study.settings.items() if k != "recipe"}
        _check_settings(reader, arm.model, recipe, base, "settings")
        _check_settings(reader, arm.model, recipe, {**base, **arm.settings}, key)
        for name, budget in study.budgets.items():
            merged = {**base, **arm.settings, **budget.settings}
            _check_settings(reader, arm.model, recipe, merged, f"budget.{name} on {key} ({arm.name})",
                            only=budget.settings)


# Placeholders for values only known when a study runs.
_PLACEHOLDER_PATH = "/nonexistent/study-placeholder"


def _check_settings(reader, model, recipe, settings, key, only=None):
    """Each setting alone, then all together, through `RunConfig.from_flags` (fit's own checks)."""
    def concrete(k, v):
        if isinstance(v, str) and (ENV_REFERENCE.search(v) or v.startswith(ARM_REFERENCE)):
            return _PLACEHOLDER_PATH
        if k == "image_size" and isinstance(v, int) and not isinstance(v, bool):
            return (v, v)
        if k == "image_size" and isinstance(v, list):
            return tuple(v)
        return v

    def attempt(values):
        values = {k: concrete(k, v) for k, v in values.items()}
        RunConfig.from_flags(model, recipe=recipe, **values)

    for k, v in settings.items():
        if only is not None and k not in only:
            continue
        where = f"{key}: {k}" if " " in key else f"{key}.{k}"
        problem = _type_problem(k, v)
        if problem:
            reader.fail(where, problem)
        try:
            attempt({k: v})
        except (UserError, TypeError, ValueError) as e:
            reader.fail(where, _reason(e))
    try:
        attempt(settings)
    except (UserError, TypeError, ValueError) as e:
        reader.fail(key, _reason(e))


def _reason(error):
    return " ".join(str(error).split())


_BOOL = ("nesterov", "freeze_bn_scale", "decay_norm_and_bias", "pca_jitter", "tta", "skip_bad_images", "model_parallel", "sync_bn")
_STR = ("dataset", "data_dir", "augment", "pad_mode", "flip", "pca_scale", "optimizer", "schedule", "precision",
        "devices", "scale_lr", "weights", "init_from")
_NUMBER = ("lr", "momentum", "weight_decay", "warmup_epochs", "final_lr_fraction", "initial_lr_fraction", "lr_decay", "label_smoothing",
           "clip_norm", "ema", "bn_bias_lr_scale", "pca_sigma", "random_erasing", "val_split", "finetune_lr")
_INT = ("epochs", "patience", "lookahead", "step_epochs", "plateau_patience", "cutout", "translate", "cpu_replicas", "freeze_backbone",
        "whiten_bias_epochs")


def _type_problem(key, value):
    """A one-phrase type problem of `value` for setting `key`, or None."""
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if key in _BOOL and not isinstance(value, bool):
        return f"must be true or false, got {_show(value)}"
    if key in _STR and not isinstance(value, str):
        return f"must be a string, got {_show(value)}"
    if key in _NUMBER and not (is_int(value) or isinstance(value, float)):
        return f"must be a number, got {_show(value)}"
    if key in _INT and not is_int(value):
        return f"must be an integer, got {_show(value)}"
    if key == "image_size" and not (is_int(value) or (
            isinstance(value, list) and len(value) == 2 and all(is_int(v) for v in value))):
        return f"must be N or [H, W], got {_show(value)}"
    if key == "batch_size" and not (is_int(value) or value == "auto"):
        return f"must be a positive integer or \"auto\", got {_show(value)}"
    if key == "limit_train" and not (is_int(value) or isinstance(value, float)):
        return f"must be a count or a fraction, got {_show(value)}"
    if key == "jit" and not (isinstance(value, bool) or value == "auto"):
        return f"must be true, false or \"auto\", got {_show(value)}"
    return None


def substitute(value, environ=None):
    """`value` with each ${VAR} replaced by the environment's value (strings only)."""
    environ = os.environ if environ is None else environ
    if not isinstance(value, str):
        return value
    return ENV_REFERENCE.sub(lambda m: environ.get(m.group(1), ""), value)
