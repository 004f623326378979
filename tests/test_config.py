import pytest

from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError


def test_defaults_and_json_round_trip():
    config = RunConfig.from_flags("vgg16_bn", epochs=3, lr=None, image_size=(224, 224), model_options={"dropout": 0.3})
    assert config.optim.lr == 0.01 and config.optim.optimizer == "sgd"
    assert config.data.batch_size == 128 and config.data.val_split == 0.1
    again = RunConfig.from_json(config.to_json())
    assert again == config
    assert again.data.image_size == (224, 224)


def test_adaptive_optimizers_default_to_a_smaller_learning_rate():
    assert RunConfig.from_flags("vgg11", optimizer="adam").optim.lr == 1e-3


@pytest.mark.parametrize(
    "flags, fragment",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": -1}, "epochs"),
        ({"val_split": 1.5}, "val_split"),
        ({"val_split": 1.0}, "val_split"),
        ({"val_split": -0.1}, "val_split"),
        ({"val_split": 0.0, "patience": 3}, "no validation set"),
        ({"lr": -0.1}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"schedule": "linear"}, "schedule"),
        ({"precision": "float8"}, "precision"),
        ({"limit_train": 0}, "limit_train"),
        ({"limit_train": 1.5}, "limit_train"),
        ({"dataset": "mnist", "data_dir": "/tmp"}, "not both"),
        ({"schedule": "plateau", "warmup_epochs": 2}, "warmup"),
        ({"patience": 0}, "patience"),
    ],
)
def test_impossible_settings_are_config_errors(flags, fragment):
    with pytest.raises(ConfigError, match=fragment):
        RunConfig.from_flags("vgg11", **flags)
