"""A study at one budget as a list of runs: every arm at every seed, or one search.

`plan_study(study, budget, data=...)` lays the settings over each other (the
study's [settings], the arm, the budget, then the command line's data
flags), checks each run as `fit` would (`RunConfig.from_flags`), and names
its run directory `runs/<arm>-seed<seed>` inside the study folder. Nothing
is read or written: the plan is pure data, and its `identity()` is what the
study folder's study.json holds, so a re-run can tell the same study from
another one.

Arms whose `requires` files are missing are planned as `Skipped`, with the
reason; `init_from = "arm:NAME"` becomes a dependency on the run of arm NAME
with the same seed, resolved to its run directory when the run starts.
"""

import dataclasses
import os
import pathlib

from kerascnn.config import RunConfig
from kerascnn.studies.format import ARM_REFERENCE, ENV_REFERENCE, StudyFileError, substitute

RUNS = "runs"
SEARCH = "search"


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One `fit` run of a study.

    Attributes:
        name: `<arm>-seed<seed>`, also its folder under runs/.
        arm, seed: what it is.
        config: the RunConfig without `run_dir`; `init_from` may still be
            "arm:NAME" (see `depends_on`).
        depends_on: the run whose best.keras `init_from` reads, or None.
    """

    name: str
    arm: str
    seed: int
    config: RunConfig
    depends_on: str = None

    def config_for(self, study_dir):
        """The RunConfig to train, with its run directory and `init_from` made paths under `study_dir`."""
        study_dir = pathlib.Path(study_dir)
        changes = {"run_dir": str(study_dir / RUNS / self.name)}
        if self.depends_on is not None:
            changes["init_from"] = str(study_dir / RUNS / self.depends_on)
        return self.config.replace(**changes)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An arm that cannot run here, and why."""

    arm: str
    reason: str


@dataclasses.dataclass(frozen=True)
class StudyPlan:
    """A study at one budget: its runs (or its search), and the arms skipped."""

    study: object
    budget: object
    runs: tuple = ()
    skipped: tuple = ()
    search: dict = None  # SearchRequest settings of a search study (see `search_request`)
    data_override: dict = None  # the command line's --dataset / --data-dir, as settings

    def run(self, name):
        return next(r for r in self.runs if r.name == name)

    def select(self, arms):
        """The runs of `arms` (names) and the runs they depend on, in plan order."""
        if not arms:
            return list(self.runs)
        known = {a.name for a in self.study.arms}
        for name in arms:
            if name not in known:
                raise StudyFileError(
                    f"--arms: study {self.study.name} has no arm {name!r}; its arms: {', '.join(sorted(known))}"
                )
        wanted = {r.name for r in self.runs if r.arm in arms}
        added = True
        while added:  # the runs they depend on, transitively
            extra = {self.run(n).depends_on for n in wanted if self.run(n).depends_on} - wanted
            wanted |= extra
            added = bool(extra)
        return [r for r in self.runs if r.name in wanted]

    def identity(self):
        """What study.json records: enough to check a re-run and to rebuild the report."""
        study = self.study
        return {
            "study": study.name,
            "title": study.title,
            "question": study.question,
            "references": list(study.references),
            "kind": study.kind,
            "figures": list(study.figures),
            "baseline": study.baseline,
            "source": study.source,
            "budget": self.budget.name,
            "budget_description": self.budget.description,
            "arms": [{"name": a.name, "label": a.label, "model": a.model} for a in study.arms],
            "runs": [
                {"name": r.name, "arm": r.arm, "seed": r.seed, "depends_on": r.depends_on,
                 "config": r.config.to_dict()}
                for r in self.runs
            ],
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "search": self.search,
            "data_override": self.data_override or {},
        }


def _layered(study, arm, budget, data):
    """The arm's flat `fit` settings and model options, each layer over the one before."""
    from kerascnn.models import model_arguments

    settings = {k: v for k, v in study.settings.items() if k != "recipe"}
    settings.update(arm.settings)
    settings.update(budget.settings)
    settings.update(data)
    accepted = model_arguments(arm.model)
    options = {**study.model_options, **arm.model_options}
    options.update({k: v for k, v in budget.model_options.items() if k in accepted})
    return settings, options


def _data_override(dataset=None, data_dir=None):
    """The command line's data flags as settings (either replaces the budget's data)."""
    if dataset is not None and data_dir is not None:
        raise StudyFileError("give either --dataset or --data-dir, not both")
    if data_dir is not None:
        return {"data_dir": os.path.abspath(data_dir), "dataset": None}
    if dataset is not None:
        return {"dataset": dataset, "data_dir": None}
    return {}


def _missing_requirements(arm, environ):
    for var in arm.requires:
        value = environ.get(var)
        if not value:
            return f"needs ${var} naming a file ({var} is not set)"
        if not os.path.exists(value):
            return f"needs ${var} naming a file ({value} does not exist)"
    return None


def _flags(settings):
    flags = dict(settings)
    size = flags.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool):
        flags["image_size"] = (size, size)
    elif isinstance(size, list):
        flags["image_size"] = tuple(size)
    return flags


def plan_study(study, budget_name, dataset=None, data_dir=None, environ=None):
    """The `StudyPlan` of `study` at budget `budget_name`, data replaced by `dataset` / `data_dir` if given."""
    environ = os.environ if environ is None else environ
    budget = study.budget(budget_name)
    data = _data_override(dataset, data_dir)
    seeds = budget.seeds or study.seeds
    if study.kind == "search":
        return StudyPlan(study, budget, search=_search_settings(study, budget, data), data_override=data)
    runs, skipped = [], []
    skipped_arms = set()
    for arm in study.arms:
        reason = _missing_requirements(arm, environ)
        init = arm.settings.get("init_from")
        parent = init[len(ARM_REFERENCE):] if isinstance(init, str) and init.startswith(ARM_REFERENCE) else None
        if reason is None and parent in skipped_arms:
            reason = f"initialised from arm {parent}, which is skipped"
        if reason is not None:
            skipped.append(Skipped(arm.name, reason))
            skipped_arms.add(arm.name)
            continue
        settings, options = _layered(study, arm, budget, data)
        settings = {k: substitute(v, environ) if ENV_REFERENCE.search(str(v)) else v for k, v in settings.items()}
        recipe = arm.recipe or study.settings.get("recipe")
        for seed in seeds:
            flags = _flags(settings)
            depends_on = None
            if parent is not None:
                depends_on = f"{parent}-seed{seed}"
                flags["init_from"] = f"{ARM_REFERENCE}{parent}"
            try:
                config = RunConfig.from_flags(
                    arm.model, recipe=recipe, seed=seed, model_options=options, **flags
                )
            except (ValueError, TypeError) as e:
                raise StudyFileError(f"study {study.name}, arm {arm.name}: {' '.join(str(e).split())}") from None
            runs.append(PlannedRun(f"{arm.name}-seed{seed}", arm.name, seed, config, depends_on))
    return StudyPlan(study, budget, tuple(runs), tuple(skipped), data_override=data)


def _search_settings(study, budget, data):
    """The `tune` request of a search study, as plain data (`search_request` makes it)."""
    spec = study.search
    settings = {**spec.settings, **budget.settings, **data}
    options = {**spec.model_options, **budget.model_options}
    return {
        "model": spec.model,
        "space": spec.space,
        "tuner": spec.tuner,
        "settings": _flags(settings),
        "model_options": options,
        "seed": (budget.seeds or study.seeds)[0],
        "max_trials": budget.search.get("max_trials"),
        "max_epochs": budget.search.get("max_epochs"),
    }


def search_request(search, study_dir):
    """The `tuning.search.SearchRequest` of a plan's search, its results under `study_dir`/search."""
    from tuning.search import SearchRequest

    settings = dict(search["settings"])
    if isinstance(settings.get("image_size"), list):
        settings["image_size"] = tuple(settings["image_size"])
    base = RunConfig.from_flags(
        search["model"], seed=search["seed"], model_options=dict(search["model_options"]), **settings
    )
    request = SearchRequest(
        base=base, space=search["space"], tuner=search["tuner"], max_trials=search["max_trials"],
        max_epochs=search["max_epochs"], results_dir=str(pathlib.Path(study_dir) / SEARCH),
    )
    request.check()
    return request
