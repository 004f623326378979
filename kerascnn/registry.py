"""Model registry: one name for the CLI, the builder function and `model.name`.

Follows the timm / keras-hub pattern: each public variant is a small function
decorated with `@register_model`; `create_model(name, **kwargs)` builds it.

This module is the table alone and imports no model, so the model families
(`kerascnn.models`) can register into it without an import cycle. Look
models up through `kerascnn.models` (or `kerascnn.create_model`), which
imports every family first; called here directly, the lookups see only the
families imported so far.
"""

import difflib
import inspect

from kerascnn.errors import ConfigError

_MODELS = {}


def register_model(builder):
    """Register `builder` under its function name; returns it unchanged."""
    name = builder.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = builder
    return builder


def list_models():
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def model_description(name):
    """First line of the builder's docstring: a one-line description."""
    doc = inspect.getdoc(_MODELS[name]) or ""
    return doc.splitlines()[0] if doc else ""


def model_arguments(name):
    """Keyword arguments the builder of `name` accepts."""
    return set(inspect.signature(_MODELS[name]).parameters)


def model_defaults(name):
    """Default value of each keyword argument of the builder of `name` (its baseline)."""
    return {
        k: p.default
        for k, p in inspect.signature(_MODELS[name]).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def check_model_name(name):
    """Raise `ConfigError` listing the valid names when `name` is unknown."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"unknown model {name!r}{hint}; available models: {', '.join(sorted(_MODELS))}"
        )


def create_model(name, **kwargs):
    """Build the registered model `name`.

    Keyword arguments that are `None` are dropped, so CLI flags that default
    to `None` keep each model's own defaults. Arguments the builder does not
    take raise `ConfigError`.
    """
    check_model_name(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    unknown = set(kwargs) - model_arguments(name)
    if unknown:
        raise ConfigError(
            f"model {name} has no option {', '.join(sorted(unknown))}; "
            f"it takes: {', '.join(sorted(model_arguments(name)))}"
        )
    return _MODELS[name](**kwargs)


def registered_builder(name):
    """The builder function registered as `name` (its signature lists the model's options)."""
    check_model_name(name)
    return _MODELS[name]
