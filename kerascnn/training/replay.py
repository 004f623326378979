"""`fit --config PATH [flags]`: a new run with the settings of another run's config.json.

PATH is a config.json written by `fit`, or the run directory holding one
(`RunConfig.read` refuses, in one line, anything else: a missing file, JSON
from another tool, settings this version does not know). The new run gets
every setting of the old one, and the flags given beside `--config`
override single values, as flags do beside `--recipe`:

- `--epochs` without `--warmup-epochs` keeps the warm-up's share of the
  budget (`warmup * epochs / first budget`), and replaces the old run's
  extensions by one schedule over the new budget; without `--epochs` the
  extensions are replayed too, so the schedule is the same;
- `--batch-size` without `--lr` scales the learning rate linearly when the
  run's recipe does (`kerascnn.recipes.Recipe.resolve`);
- `--precision` and `--jit` that the old run resolved from `auto` are `auto`
  again, resolved for this machine (and logged), unless given.

Everything the old run measured (`resolved`: normalisation, classes, ...)
is measured again; the new config.json names the run it replays in
`replayed_from` with the values overridden.
"""

import dataclasses
import pathlib

from kerascnn.config import CONFIG_FILE, DataConfig, OptimConfig, RunConfig
from kerascnn.errors import ConfigError
from kerascnn.recipes import get_recipe

# RunConfig fields that are not settings a flag gives, or that a new run must not inherit.
_NOT_REPLAYED = ("model", "model_options", "data", "optim", "recipe", "extensions", "replayed_from", "resolved", "run_dir")


def replay_config(path, model=None, flags=None):
    """The RunConfig of a new run with the settings of the config.json at `path`, `flags` overriding single values.

    Args:
        path: a config.json, or a run directory.
        model: a model named beside `--config` (must be the saved one), or None.
        flags: {setting: value} as `RunConfig.from_flags` takes them (None:
            not given), the model options under "model_options".
    """
    saved = RunConfig.read(path)
    source = pathlib.Path(path)
    source = (source / CONFIG_FILE if source.is_dir() else source).resolve()
    if model is not None and model != saved.model:
        raise ConfigError(
            f"{source} is a run of {saved.model}, not {model}; drop the model name to replay it, "
            f"or train {model} without --config"
        )
    given = {k: v for k, v in (flags or {}).items() if v is not None and k != "model_options"}
    options = {k: v for k, v in ((flags or {}).get("model_options") or {}).items() if v is not None}
    if "recipe" in given:
        raise ConfigError(
            "--recipe does not combine with --config: the config holds every value its recipe gave; "
            "give the values to change, or start from the recipe without --config"
        )

    settings = {f.name: getattr(saved, f.name) for f in dataclasses.fields(RunConfig) if f.name not in _NOT_REPLAYED}
    settings.update(dataclasses.asdict(saved.data))
    settings.update(dataclasses.asdict(saved.optim))
    for setting in saved.resolved.auto or {}:  # chosen for the old machine; choose again for this one
        settings[setting] = "auto"
    settings.update(given)

    extensions = saved.extensions
    if "epochs" in given:
        extensions = ()
        if "warmup_epochs" not in given and saved.optim.warmup_epochs:
            settings["warmup_epochs"] = round(saved.optim.warmup_epochs * given["epochs"] / saved.first_budget, 3)
    recipe = get_recipe(saved.model, saved.recipe) if saved.recipe else None
    batch = given.get("batch_size")
    if (
        recipe is not None and isinstance(batch, int) and "lr" not in given and isinstance(saved.data.batch_size, int)
        and "lr" in recipe.settings and recipe.settings.get("batch_size")
    ):
        settings["lr"] = saved.optim.lr * batch / saved.data.batch_size

    data = DataConfig(**{k: settings.pop(k) for k in list(settings) if k in _fields(DataConfig)})
    optim = OptimConfig(**{k: settings.pop(k) for k in list(settings) if k in _fields(OptimConfig)})
    overrides = {**given, **({"model_options": options} if options else {})}
    return RunConfig(
        model=saved.model,
        model_options={**saved.model_options, **options},
        data=data,
        optim=optim,
        recipe=saved.recipe,
        extensions=extensions,
        replayed_from={"config": str(source), "run_dir": saved.run_dir, "overrides": overrides},
        **settings,
    )


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}
