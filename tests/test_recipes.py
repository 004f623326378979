"""Recipes as data: flags over the recipe over the defaults, validation, `list`, config.json."""

import json

import pytest

from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.recipes import DEFAULT, default_recipe, get_recipe, recipes_for


def test_every_model_has_the_default_recipe_and_it_is_the_plain_defaults():
    from kerascnn.models import list_models

    for name in list_models():
        assert DEFAULT in recipes_for(name) and default_recipe(name) in recipes_for(name)
    assert RunConfig.from_flags("resnet20") == RunConfig(model="resnet20", recipe="paper")
    assert RunConfig.from_flags("vgg19", recipe="paper") == RunConfig(model="vgg19", recipe="paper")
    # The paper recipe sets nothing, so an optimizer keeps its own default learning rate.
    assert RunConfig.from_flags("alexnet_cifar", optimizer="adam").optim.lr == pytest.approx(1e-3)


def test_the_plain_vggs_default_to_the_scratch_recipe_and_paper_stays_one_flag_away():
    for name in ("vgg8", "vgg11", "vgg13", "vgg16", "vgg19"):
        assert default_recipe(name) == "scratch"
    for name in ("vgg16_bn", "vgg19_bn", "alexnet_cifar", "resnet20"):
        assert default_recipe(name) == "paper"
    config = RunConfig.from_flags("vgg19")
    assert config.recipe == "scratch" and config.optim.lr == 0.002
    assert config.model_options == {"dropout": 0.0, "conv_init": "fan_in"}
    assert (config.optim.optimizer, config.optim.schedule, config.epochs, config.data.batch_size) == ("sgd", "cosine", 30, 128)
    assert RunConfig.from_flags("vgg19", model_options={"dropout": 0.5}).model_options["dropout"] == 0.5
    # Another optimizer without --lr starts from its own default, not from SGD's 0.002 (or the fast recipe's 0.2).
    assert RunConfig.from_flags("vgg19", optimizer="adam").optim.lr == pytest.approx(1e-3)
    assert RunConfig.from_flags("alexnet_cifar", recipe="fast", optimizer="adam").optim.lr == pytest.approx(1e-3)
    assert RunConfig.from_flags("vgg19", optimizer="adam", lr=3e-4).optim.lr == 3e-4
    assert RunConfig.from_flags("vgg19", optimizer="sgd").optim.lr == 0.002  # the recipe's own optimizer keeps it


def test_a_recipe_sets_every_value_and_flags_override_single_ones():
    config = RunConfig.from_flags("alexnet_cifar", recipe="fast")
    assert config.recipe == "fast" and config.epochs == 10
    assert config.model_options == {"batch_norm": True, "dropout": 0.0, "logit_scale": 0.125, "conv_init": "dirac"}
    assert (config.optim.schedule, config.optim.lr, config.optim.nesterov) == ("onecycle", 0.1, True)
    # airbench's batch-norm treatment and twice the shared decay (docs/results.md#recipes)
    assert (config.optim.weight_decay, config.optim.bn_bias_lr_scale, config.optim.freeze_bn_scale) == (1e-3, 64.0, True)
    resnet = RunConfig.from_flags("preact_resnet18", recipe="fast", model_options={"zero_init_residual": True})
    assert (resnet.optim.lr, resnet.data.batch_size, resnet.model_options) == (0.4, 512, {"zero_init_residual": True})
    assert (resnet.optim.label_smoothing, resnet.data.cutout) == (0.2, 8)  # the shared recipe, untouched
    assert (config.data.batch_size, config.data.val_split, config.data.cutout) == (128, 0.0, 0)
    assert config.data.flip == "alternating"  # airbench's, +0.51 and +0.12 points at two seeds
    assert config.data.translate == 2  # airbench's 2-pixel crops, +0.13 and +0.40 at the same two seeds
    assert RunConfig.from_flags("alexnet_cifar", recipe="fast", flip="random").data.flip == "random"
    assert config.optim.warmup_epochs == pytest.approx(2.0)  # 20% of the budget
    shorter = RunConfig.from_flags("alexnet_cifar", recipe="fast", epochs=5, lr=0.2, model_options={"dropout": 0.3})
    assert (shorter.epochs, shorter.optim.lr, shorter.optim.warmup_epochs) == (5, 0.2, pytest.approx(1.0))
    assert shorter.model_options == {"batch_norm": True, "dropout": 0.3, "logit_scale": 0.125, "conv_init": "dirac"} and shorter.optim.nesterov
    assert RunConfig.from_flags("alexnet_cifar", recipe="fast", warmup_epochs=3).optim.warmup_epochs == 3
    # resnet20's and vgg16_bn's recipes are the ones their time-to-accuracy runs measured (docs/results.md#recipes).
    for name, epochs in (("resnet20", 20), ("resnet56", 30)):  # one set of CIFAR ResNet settings (NOTES 107)
        cifar_resnet = RunConfig.from_flags(name, recipe="fast")
        assert (cifar_resnet.epochs, cifar_resnet.data.batch_size, cifar_resnet.optim.lr,
                cifar_resnet.optim.label_smoothing, cifar_resnet.data.cutout,
                cifar_resnet.optim.weight_decay) == (epochs, 128, 0.1, 0.0, 0, 1e-3)
    for name in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):  # one set of batch-norm VGG settings (NOTES 105, 106, 110)
        vgg = RunConfig.from_flags(name, recipe="fast")
        assert (vgg.epochs, vgg.data.batch_size, vgg.optim.lr, vgg.data.cutout, vgg.model_options) == (
            15, 128, 0.1, 0, {"dropout": 0.0})
        assert (vgg.optim.weight_decay, vgg.optim.bn_bias_lr_scale, vgg.optim.freeze_bn_scale) == (1e-3, 64.0, True)


def test_a_batch_size_given_alone_scales_the_recipes_learning_rate_linearly():
    assert RunConfig.from_flags("preact_resnet18", recipe="fast", batch_size=128).optim.lr == pytest.approx(0.1)
    assert RunConfig.from_flags("alexnet_cifar", recipe="fast", batch_size=256).optim.lr == pytest.approx(0.2)
    assert RunConfig.from_flags("preact_resnet18", recipe="fast", batch_size=512, lr=0.3).optim.lr == 0.3  # lr given wins
    assert RunConfig.from_flags("preact_resnet18", recipe="fast", batch_size="auto").optim.lr == 0.4  # unknown until planned
    assert RunConfig.from_flags("vgg19", recipe="paper", batch_size=512).optim.lr == 0.01  # paper sets no lr: the default stays
    assert RunConfig.from_flags("vgg19", batch_size=512).optim.lr == pytest.approx(0.008)  # scratch's 0.002 x 512 / 128
    # Another schedule without a shape drops the recipe's warm-up and end; one given beside it is refused.
    stepped = RunConfig.from_flags("airbench94", recipe="fast", schedule="step").optim
    assert (stepped.warmup_epochs, stepped.initial_lr_fraction, stepped.final_lr_fraction) == (0, 0, 0)
    assert RunConfig.from_flags("resnet20", recipe="fast", schedule="cosine").optim.warmup_epochs == 4
    from kerascnn.errors import ConfigError

    with pytest.raises(ConfigError, match="--warmup-epochs works with --schedule cosine or onecycle"):
        RunConfig.from_flags("resnet20", recipe="fast", schedule="constant", warmup_epochs=2)
    # Another optimizer and a batch size together: the optimizer's own default, not SGD's rate scaled.
    assert RunConfig.from_flags("resnet20", recipe="fast", optimizer="adam", batch_size=256).optim.lr == pytest.approx(1e-3)


def test_the_cli_turns_off_what_a_recipe_turns_on():
    """`fast` turns on Nesterov and airbench's frozen batch-norm scales; --no-nesterov, --no-freeze-bn-scale undo them."""
    from kerascnn.cli.app import build_parser
    from kerascnn.cli.train import fit_settings

    def config(*argv):
        args = build_parser().parse_args(["fit", "alexnet_cifar", "--recipe", "fast", *argv])
        return RunConfig.from_flags(args.model, **fit_settings(args))

    assert config().optim.nesterov and config().optim.freeze_bn_scale
    off = config("--no-nesterov", "--no-freeze-bn-scale", "--bn-bias-lr-scale", "1")
    assert (off.optim.nesterov, off.optim.freeze_bn_scale, off.optim.bn_bias_lr_scale) == (False, False, 1.0)
    assert config("--nesterov").optim.nesterov is True


def test_an_unknown_recipe_is_refused_naming_the_models_recipes():
    with pytest.raises(ConfigError, match=r"model vgg19 has no recipe 'fast'; its recipes: paper, scratch"):
        get_recipe("vgg19", "fast")
    with pytest.raises(ConfigError, match="its recipes: paper, fast"):
        RunConfig(model="resnet20", recipe="slow")


def test_config_json_records_the_recipe_and_an_older_one_without_it_still_loads(tmp_path):
    config = RunConfig.from_flags("resnet20", recipe="fast")
    assert RunConfig.from_json(config.to_json()) == config
    old = json.loads(config.to_json())
    del old["recipe"]
    assert RunConfig.from_dict(old).recipe is None


def test_the_cli_lists_recipes_and_refuses_an_unknown_one_in_one_line(tmp_path, capsys):
    from kerascnn.cli.app import main

    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "--recipe fast: one-cycle 0 -> 0.1 -> 0 over 10 epochs" in listing and "--recipe paper:" in listing
    argv = ["fit", "vgg19", "--recipe", "fast", "--dataset", "synthetic", "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "kerascnn fit: error: model vgg19 has no recipe 'fast'; its recipes: paper, scratch"
    ]
    assert not (tmp_path / "run").exists()


def test_a_recipe_summary_names_its_flip():
    from kerascnn.recipes import fast

    assert "crop + flip" in fast(10).summary
    assert "crop + alternating flip" in fast(10, {"flip": "alternating"}).summary
    assert "crop (shift 2) + no flip" in fast(10, {"flip": "none", "translate": 2}).summary
    assert RunConfig.from_flags("alexnet_cifar", recipe="fast", flip="alternating").data.flip == "alternating"


def test_a_recipe_s_decay_on_biases_goes_with_the_decay_it_extends():
    """--weight-decay 0 or --optimizer adamw beside a recipe drops its decay_norm_and_bias; given too, refused."""
    from kerascnn.cli.app import build_parser
    from kerascnn.cli.train import fit_settings
    from kerascnn.recipes import Recipe, _fast_summary

    recipe = Recipe("r", "", {"weight_decay": 5e-4, "decay_norm_and_bias": True})
    assert recipe.resolve({})["decay_norm_and_bias"] is True
    assert "decay_norm_and_bias" not in recipe.resolve({"weight_decay": 0.0})
    assert "decay_norm_and_bias" not in recipe.resolve({"optimizer": "adamw"})
    assert recipe.resolve({"weight_decay": 0.0, "decay_norm_and_bias": True})["decay_norm_and_bias"] is True
    with pytest.raises(ConfigError, match="--weight-decay 0"):
        RunConfig.from_flags("airbench94", recipe="fast", weight_decay=0.0, decay_norm_and_bias=True)
    args = build_parser().parse_args(["fit", "resnet20", "--decay-norm-and-bias"])
    assert RunConfig.from_flags(args.model, **fit_settings(args)).optim.decay_norm_and_bias
    assert "decay on biases and batch-norm parameters too" in _fast_summary(
        {"lr": 0.1, "epochs": 1, "momentum": 0.9, "nesterov": True, "batch_size": 8, "weight_decay": 1e-3,
         "label_smoothing": 0, "cutout": 0, "decay_norm_and_bias": True})


def test_every_measured_recipe_exists_and_points_at_a_section_of_the_results():
    """A figure beside a recipe is only a pointer: its model, recipe and docs section must exist."""
    import pathlib
    import re

    from kerascnn.models import list_models
    from kerascnn.recipe_results import MEASURED, RESULTS_DOC

    doc = (pathlib.Path(__file__).parent.parent / RESULTS_DOC).read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"', doc))
    # GitHub's heading anchors: lower case, punctuation but hyphens dropped, spaces as hyphens.
    anchors |= {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", doc, re.M)}
    for (model, recipe), (figures, anchor) in MEASURED.items():
        assert model in list_models() and recipe in recipes_for(model), (model, recipe)
        assert anchor in anchors, anchor
        assert "%" in figures and "epochs" in figures


def test_list_shows_what_each_recipe_measured_and_which_fast_recipes_have_not_been_trained(capsys, monkeypatch):
    from kerascnn.cli.app import main
    from kerascnn import recipe_results
    from kerascnn.recipe_results import NOT_MEASURED, measured

    def listing():
        assert main(["list"]) == 0
        return capsys.readouterr().out.splitlines()

    def lines_under(model, lines):
        start = next(i for i, line in enumerate(lines) if line.startswith(model + " "))
        end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
        return lines[start + 1:end]

    alexnet = lines_under("alexnet_cifar", listing())
    fast_at = next(i for i, line in enumerate(alexnet) if "--recipe fast:" in line)
    assert alexnet[fast_at + 1].strip() == f"measured: {measured('alexnet_cifar', 'fast')}"
    assert "docs/results.md#alexnet-dirac-start" in alexnet[fast_at + 1]
    assert sum("measured:" in line for line in alexnet) == 1  # `paper` claims nothing
    assert measured("alexnet", "paper") is None
    # A `fast` recipe with no run behind it says so, whichever model that is: take one
    # model's measurement away and both `measured` and `list` must stop claiming it.
    assert measured("resnet56", "fast") != NOT_MEASURED
    monkeypatch.delitem(recipe_results.MEASURED, ("resnet56", "fast"))
    assert measured("resnet56", "fast") == NOT_MEASURED
    resnet56 = lines_under("resnet56", listing())
    assert f"measured: {NOT_MEASURED}" in "\n".join(resnet56)
    assert not any("resnet56-30-epochs" in line for line in resnet56)
    assert f"measured: {NOT_MEASURED}" not in "\n".join(lines_under("alexnet_cifar", listing()))
