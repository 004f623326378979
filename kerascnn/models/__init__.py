"""Model families. Importing this package registers every model.

The lookups of `kerascnn.registry` are re-exported here: importing them from
`kerascnn.models` guarantees that every built-in family has registered.
"""

from kerascnn.models import airbench, alexnet, googlenet, resnet, vgg  # noqa: F401
from kerascnn.registry import (
    check_model_name,
    create_model,
    list_models,
    model_arguments,
    model_defaults,
    model_description,
    register_model,
    registered_builder,
)

__all__ = [
    "check_model_name",
    "create_model",
    "list_models",
    "model_arguments",
    "model_defaults",
    "model_description",
    "register_model",
    "registered_builder",
]
