"""Validation by kind of value: every kind refuses bools, NaN and infinities, in one message form."""

import math
import re

import pytest

from kerascnn import validation as v
from kerascnn.config import KINDS, RunConfig
from kerascnn.errors import ConfigError

NOT_NUMBERS = [True, False, math.nan, math.inf, -math.inf, "1", None, [1]]


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (v.positive_int, [1, 7, 10**30], [0, -1, 1.0, 2.5]),
        (v.non_negative_int, [0, 3], [-1, 0.0]),
        (v.positive_float, [1e-9, 3, 0.5, 1e300], [0, 0.0, -1e-9]),
        (v.non_negative_float, [0, 0.0, 2.5], [-1e-12]),
        (v.interval(0, 1, high_open=True), [0, 0.0, 0.999], [1, 1.0, -0.001]),
        (v.interval(0, 1, low_open=True, high_open=True), [1e-9, 0.5], [0, 1]),
        (v.interval(0, 1), [0, 1, 1.0], [1.0001, -0.1]),
        (v.interval(0, 2**32, high_open=True, integer=True), [0, 2**32 - 1], [2**32, -1, 0.5]),
    ],
)
def test_numbers(kind, good, bad):
    for value in good:
        assert kind("x", value) == value
    for value in bad + NOT_NUMBERS:
        with pytest.raises(ConfigError, match=rf"^x must be {re.escape(kind.expected)}\. Received: x=.+$"):
            kind("x", value)


def test_messages_end_with_the_value_received():
    with pytest.raises(ConfigError) as e:
        v.positive_float("lr", math.nan)
    assert str(e.value) == "lr must be a positive number. Received: lr=nan"
    with pytest.raises(ConfigError) as e:
        v.in_range("momentum", 1.0, 0, 1, high_open=True)
    assert str(e.value) == "momentum must be a number in [0, 1). Received: momentum=1.0"
    with pytest.raises(ConfigError, match=r"must be a number in \(0, 1\]\. Received: p=0$"):
        v.in_range("p", 0, 0, 1, low_open=True)


def test_in_range_bounds_are_open_or_closed_as_asked():
    assert v.in_range("p", 0.0, 0, 1) == 0.0 and v.in_range("p", 1.0, 0, 1) == 1.0
    for value, low_open, high_open in ((0.0, True, False), (1.0, False, True), (math.nan, False, False)):
        with pytest.raises(ConfigError):
            v.in_range("p", value, 0, 1, low_open=low_open, high_open=high_open)


def test_shapes():
    assert v.shape("image_size", [32, 24], 2) == (32, 24)
    for bad in ((32,), (32, 0), (32, 2.0), (32, True), (32, math.nan), "32,32", None, (1, 2, 3)):
        with pytest.raises(ConfigError, match=r"^image_size must be 2 positive integers\. Received: image_size="):
            v.shape("image_size", bad, 2)


def test_either_choice_sequence_text():
    batch = KINDS["batch_size"]
    assert batch("b", "auto") == "auto" and batch("b", 64) == 64
    for bad in ("big", 0, 1.5, math.nan, True):
        with pytest.raises(ConfigError, match="a positive integer or auto"):
            batch("b", bad)
    on_off = v.Choice("on or off", {"on": True, "off": False})
    assert on_off.parse("ON") is True and on_off("jit", False) is False
    with pytest.raises(ConfigError):
        on_off("jit", 1)  # True == 1, but 1 is not on
    indices = v.Sequence(v.non_negative_int, "GPU indices")
    assert indices("d", (0, 2)) == [0, 2]
    for bad in ([], [0, -1], [0, math.nan], "0,1"):
        with pytest.raises(ConfigError):
            indices("d", bad)
    with pytest.raises(ConfigError):
        v.Text()("arm", " a")


@pytest.mark.parametrize(
    "flags",
    [
        {"lr": math.nan}, {"lr": math.inf}, {"momentum": math.nan}, {"weight_decay": -math.inf},
        {"warmup_epochs": math.nan}, {"lr_decay": 1.0}, {"label_smoothing": math.nan}, {"clip_norm": math.inf},
        {"ema": 1.0}, {"pca_sigma": math.nan}, {"val_split": math.nan}, {"limit_train": math.nan},
        {"random_erasing": math.inf}, {"cutout": True}, {"image_size": (32, math.nan)}, {"epochs": True},
        {"patience": 2.0}, {"seed": 2**32}, {"finetune_lr": math.nan}, {"step_epochs": 0},
        {"plateau_patience": math.inf}, {"cpu_replicas": 0},
        {"model_options": {"dropout": math.nan}}, {"model_options": {"dropout": 1.0}},
        {"model_options": {"width_multiplier": math.nan}}, {"model_options": {"width_multiplier": -1}},
    ],
)
def test_run_config_refuses_what_is_not_a_number_of_its_kind(flags):
    name = next(iter(flags["model_options"])) if "model_options" in flags else next(iter(flags))
    with pytest.raises(ConfigError, match=rf"^{name} must be .*\. Received: {name}="):
        RunConfig.from_flags("vgg11", **flags)


def test_a_config_json_with_nan_is_refused():
    text = RunConfig.from_flags("vgg11", recipe="paper").to_json().replace('"lr": 0.01', '"lr": NaN')
    assert '"lr": NaN' in text
    with pytest.raises(ConfigError, match=r"lr must be a positive number\. Received: lr=nan"):
        RunConfig.from_json(text)


def test_every_numeric_setting_has_a_kind():
    import dataclasses

    from kerascnn.config import DataConfig, OptimConfig

    numeric = {
        f.name
        for cls in (DataConfig, OptimConfig, RunConfig)
        for f in dataclasses.fields(cls)
        if f.type in (int, float, "int", "float")
    }
    assert numeric <= set(KINDS), sorted(numeric - set(KINDS))
