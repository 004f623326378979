"""Training recipes as data: every hyperparameter of a way to train a model, under a name.

A recipe is a flat set of `RunConfig` settings (the same names as the `fit`
flags) plus the model options it needs. `fit MODEL --recipe NAME` starts
from the recipe; every flag given beside it overrides that one value:

    CLI flags (None = not given)  ->  the recipe's settings  ->  RunConfig defaults

`RunConfig.from_flags(model, recipe=NAME, **flags)` applies that order, and
config.json records the recipe's name beside every resolved value, so a run
says both where its settings came from and what they were.

Two kinds of recipe:

- `paper`, every model's default: the papers' SGD with momentum 0.9, weight
  decay 5e-4, batch 128, 30 epochs of cosine decay from 0.01 (Krizhevsky et
  al. 2012, section 5; Simonyan & Zisserman 2015, section 3.1), 10% of the
  training set held out to choose the tested epoch. `fit MODEL` with no flag
  trains this way, as it always has.
- `fast`, for the batch-normalised CIFAR networks: the fast CIFAR-10 recipes
  (Page's cifar10-fast 2018; Jordan's airbench 2024): one-cycle learning rate
  (linear from 0 to the peak at 20% of the budget, linear to 0 at the end),
  Nesterov momentum 0.9, batch 512 with peak 0.4 (the mean-loss equivalent of
  cifar10-fast's 0.4/512 per summed example; alexnet_cifar, whose dense head
  is unstable there, 0.1 and no dropout), weight decay 5e-4, label
  smoothing 0.2, crop + flip + cutout 8, all 50,000 training images
  (`val_split=0`) and the last epoch's model tested. Budgets follow the
  anchors the project aims at (alexnet_cifar 10 epochs, resnet20 20,
  vgg16_bn 15); docs/results.md says what each has measured.

This module is pure data and imports nothing from the project's higher
layers, so the configuration (`kerascnn.config`) can resolve a recipe.
"""

import dataclasses

from kerascnn.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One way to train a model.

    Attributes:
        name: what `--recipe` takes.
        summary: one line for `list` and the logs.
        settings: `RunConfig` settings by flag name (optimizer, lr, schedule,
            epochs, batch_size, weight_decay, label_smoothing, nesterov,
            augment, cutout, val_split, ...).
        model_options: builder options the recipe needs (e.g. batch_norm).
        warmup_fraction: warm-up as a fraction of the epochs, so that
            `--epochs` beside the recipe keeps the schedule's shape.
    """

    name: str
    summary: str
    settings: dict
    model_options: dict = dataclasses.field(default_factory=dict)
    warmup_fraction: float = None

    def resolve(self, flags):
        """The settings of a run: the recipe's, then `flags` (those not None) over them."""
        given = {k: v for k, v in flags.items() if v is not None}
        settings = {**self.settings, **given}
        if self.warmup_fraction is not None and "warmup_epochs" not in given:
            settings["warmup_epochs"] = round(self.warmup_fraction * settings["epochs"], 3)
        return settings

    def describe(self):
        options = ", ".join(f"{k}={v}" for k, v in self.model_options.items())
        return f"{self.name}: {self.summary}" + (f" ({options})" if options else "")


# The `RunConfig` defaults themselves: setting nothing keeps, e.g., Adam's own
# default learning rate when `--optimizer adam` is given beside it.
PAPER = Recipe(
    "paper",
    "SGD 0.9, lr 0.01 (adaptive optimizers 0.001) cosine, wd 5e-4, batch 128, 30 epochs, 10% validation, "
    "best-validation epoch tested",
    {},
)


def fast(epochs, lr=0.4, **model_options):
    """The one-cycle recipe of the fast CIFAR-10 trainers, for a budget of `epochs` and a peak `lr`."""
    return Recipe(
        "fast",
        f"one-cycle 0 -> {lr:g} -> 0 over {epochs} epochs, Nesterov, batch 512, wd 5e-4, label smoothing 0.2, "
        "crop + flip + cutout 8, all 50k images, last epoch tested",
        {"optimizer": "sgd", "lr": lr, "momentum": 0.9, "nesterov": True, "schedule": "onecycle",
         "weight_decay": 5e-4, "label_smoothing": 0.2, "batch_size": 512, "epochs": epochs,
         "augment": "cifar", "cutout": 8, "val_split": 0.0},
        model_options,
        warmup_fraction=0.2,
    )


# Recipes beyond `paper`, by model. A model not listed has `paper` only.
_FAST = {
    # Peak 0.4 made the training cross-entropy rise above chance (4.0 after epoch 1); 0.1 without
    # dropout reached 82.0% in 10 epochs (docs/results.md#recipes, 2026-11-30).
    "alexnet_cifar": fast(10, lr=0.1, batch_norm=True, dropout=0.0),
    "resnet20": fast(20),
    "resnet56": fast(30),
    "resnet18": fast(20),
    "preact_resnet18": fast(20),
    "vgg11_bn": fast(15),
    "vgg16_bn": fast(15),
    "vgg19_bn": fast(15),
    "googlenet_cifar": fast(20),
}

DEFAULT = "paper"


def recipes_for(model):
    """{name: Recipe} of `model`, `paper` first."""
    table = {PAPER.name: PAPER}
    if model in _FAST:
        table[_FAST[model].name] = _FAST[model]
    return table


def get_recipe(model, name=None):
    """The `Recipe` `name` of `model` (its default when None); ConfigError listing the valid names."""
    name = DEFAULT if name is None else name
    table = recipes_for(model)
    if name not in table:
        raise ConfigError(f"model {model} has no recipe {name!r}; its recipes: {', '.join(table)}")
    return table[name]
