"""What each training recipe has measured: the evidence `list` and `fit` show beside it.

One line per (model, recipe) that has been trained on the full CIFAR-10 of
`../shared/data` (JPEG re-encoded, about 3.4 points below the original pixels
for airbench94's own recipe): all 50,000 training images, the last epoch's
model (or, for a recipe with a validation split, the best-validation epoch's)
scored on all 10,000 test images, never a model chosen on test data. Each line
names the section of docs/results.md that holds its runs, hosts and commands
(a test checks that the section exists), so a figure here is a pointer to its
evidence, not a second copy to drift: the runs themselves are the record.

A `fast` recipe without a line says so, because it promises an accuracy: the
shared recipe is written for every batch-normalised CIFAR network, but a
network not listed has not been shown to reach anything with it.
"""

RESULTS_DOC = "docs/results.md"

# (model, recipe) -> (what it measured, the anchor of its section in RESULTS_DOC)
MEASURED = {
    ("alexnet_cifar", "fast"): (
        "87.90% plain (87.73-88.04% at four seeds), 88.77% with flips, after 10 epochs; "
        "1,688-1,773 s of training on a 2-core Zen 4 EPYC, about 800 s on a Zen 5",
        "alexnet-dirac-start",
    ),
    ("resnet20", "fast"): (
        "86.75% and 87.05% plain (two seeds), 87.57% and 88.02% with flips, after 20 epochs; "
        "about 2,200 s of training on a 2-core Zen 3 EPYC in float32",
        "decay-1e-3-second-seed-resnet20",
    ),
    ("vgg16_bn", "fast"): (
        "88.47% and 88.29% plain (two seeds), 89.44% and 89.50% with flips, after 15 epochs; "
        "4,593 s of training on a 2-core Zen 4 EPYC",
        "recipes",
    ),
    ("airbench94", "fast"): (
        "89.69% plain (89.44-89.83% at four seeds), 90.59% with flips and shifts, after 10 epochs; "
        "369-394 s of training on a 2-core Xeon with AMX",
        "airbench94-decay-everything",
    ),
    ("resnet56", "fast"): (
        "89.18% plain, 89.97% with flips (one seed), after 30 epochs; "
        "2,864 s of training on a 2-core Zen 5 EPYC",
        "resnet56-30-epochs",
    ),
    ("resnet18", "fast"): (
        "89.31% plain, 90.04% with flips (one seed), after 20 epochs; "
        "4,974 s of training on a 2-core Zen 5 EPYC",
        "resnet18-20-epochs",
    ),
    ("preact_resnet18", "fast"): (
        "89.48% plain, 90.31% with flips (one seed), after 20 epochs; "
        "5,193 s of training on a 2-core Zen 5 EPYC",
        "preactresnet18-20-epochs",
    ),
    ("vgg11_bn", "fast"): (
        "87.24% and 87.41% plain (two seeds), 88.26% and 88.31% with flips, after 15 epochs; "
        "1,178-1,213 s of training on a 2-core Zen 5 EPYC (the shared recipe it replaced: 85.14%)",
        "vgg11bn-vgg-bn-settings",
    ),
    ("vgg13_bn", "fast"): (
        "88.33% plain, 89.73% with flips (one seed), after 15 epochs; "
        "1,730 s of training on a 2-core Zen 5 EPYC",
        "vgg13bn-15-epochs",
    ),
    ("vgg19_bn", "fast"): (
        "87.96% plain, 88.82% with flips (one seed), after 15 epochs; "
        "2,919 s of training on a 2-core Zen 5 EPYC",
        "vgg19bn-15-epochs",
    ),
    ("googlenet_cifar", "fast"): (
        "over 10 epochs (`--epochs 10`), not its own 20: 87.66% plain, 88.48% with flips (one seed); "
        "7,362 s of training on a 2-core Zen 5 EPYC",
        "googlenet-10-epochs",
    ),
    ("vgg19", "scratch"): (
        "80.6% (81.8% with flips) after 30 epochs, the best-validation epoch of 45,000 training images; "
        "about 3.4 h of training on a 2-core Zen 4 EPYC",
        "python-mainpy-fit-vgg19-with-the-defaults-30-epochs",
    ),
}

NOT_MEASURED = "nothing yet (not trained on the full CIFAR-10 with this recipe)"


def measured(model, recipe):
    """One line: what `recipe` (a name) measured on `model`, and where; None where nothing is claimed.

    A `fast` recipe with no measurement gets `NOT_MEASURED`; the `paper` and
    `scratch` defaults without one get None (they promise no accuracy).
    """
    if (model, recipe) in MEASURED:
        figures, anchor = MEASURED[(model, recipe)]
        return f"{figures} ({RESULTS_DOC}#{anchor})"
    return NOT_MEASURED if recipe == "fast" else None
