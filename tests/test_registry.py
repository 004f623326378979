import pytest

from kerascnn.errors import ConfigError
from kerascnn.models import create_model, list_models, model_description

VGG_NAMES = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


def test_every_vgg_configuration_is_registered_with_a_description():
    names = list_models()
    assert set(VGG_NAMES) <= set(names)
    assert names == sorted(names)
    for name in VGG_NAMES:
        assert "VGG" in model_description(name)


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ConfigError) as err:
        create_model("vgg17")
    message = str(err.value)
    assert "vgg17" in message and "vgg16" in message and "vgg19_bn" in message


def test_none_keyword_arguments_keep_the_model_defaults():
    model = create_model("vgg11", num_classes=10, input_shape=(32, 32, 3), dropout=None, width_multiplier=None)
    assert model.get_layer("fc1_dropout").rate == 0.5


def test_an_option_the_builder_does_not_take_is_a_config_error():
    with pytest.raises(ConfigError, match="no option depth"):
        create_model("vgg11", depth=3)
