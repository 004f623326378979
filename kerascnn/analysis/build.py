"""Building a registered model for analysis, with a clear error for a shape it cannot take.

Keras reports a shape a layer cannot take as a bare ValueError ("Computed
output size would be zero or negative ...") without naming the layer;
`build_model` finds the layer being called in the traceback and says which
one failed and why, as one line for the CLI.
"""

import sys

from kerascnn.errors import ConfigError
from kerascnn.models import create_model


def _failing_layer(tb):
    """The innermost Keras layer (not a model) whose `__call__`/`call` was running."""
    import keras

    found = None
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, keras.layers.Layer) and not isinstance(obj, keras.Model):
            found = obj
        tb = tb.tb_next
    return found


def describe_layer(layer):
    from kerascnn.analysis.profile import describe

    config = describe(layer)
    return f"{layer.name} ({type(layer).__name__}{', ' + config if config else ''})"


def build_model(name, input_shape=None, num_classes=None, **options):
    """`create_model(name, ...)`, turning a shape error into a ConfigError naming the layer."""
    import keras

    # Keras strips its own frames from tracebacks, the layer's among them.
    filtering = keras.config.is_traceback_filtering_enabled()
    keras.config.disable_traceback_filtering()
    try:
        return create_model(name, input_shape=input_shape, num_classes=num_classes, **options)
    except ConfigError:
        raise
    except ValueError as e:
        layer = _failing_layer(sys.exc_info()[2])
        shape = "x".join(str(d) for d in input_shape) if input_shape else "its default input shape"
        reason = " ".join(str(e).split())
        where = f"layer {describe_layer(layer)}" if layer is not None else "building the model"
        raise ConfigError(
            f"{name} cannot take input shape {shape}: {where} fails: {reason} "
            "(use a larger --input-shape)"
        ) from None
    finally:
        if filtering:
            keras.config.enable_traceback_filtering()
