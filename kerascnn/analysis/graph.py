"""Walking a Functional model's graph: every call of every layer, in order.

The profile, the receptive fields and the feature-map picker all need the
same thing: each call of each layer (a Keras `Node`) with the tensors it
reads and writes, in an order where a call comes after the calls that
produce its inputs, with nested models (a sub-model used as a layer)
opened up so their own layers are listed. Our models are flat Functional
graphs with hierarchical names (`inception_3a_3x3`, `conv3_block2_1_conv`),
so most of the time this is simply `model.layers`.
"""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class Call:
    """One call of a layer: `layer(*inputs) -> outputs`.

    Attributes:
        name: the layer name, prefixed with `outer/` inside nested models.
        layer: the Keras layer.
        inputs: the KerasTensors it reads (empty for an InputLayer).
        outputs: the KerasTensors it writes.
    """

    name: str
    layer: object
    inputs: tuple
    outputs: tuple


def _model_nodes(model, layer):
    """The calls of `layer` that belong to `model`'s graph (shared layers have several)."""
    # Keras keys a model's nodes as "<id(layer)>_ib-<index>" (Functional._nodes).
    keys = getattr(model, "_nodes", None)
    nodes = layer._inbound_nodes
    if keys is None:
        return nodes[:1]
    return [n for i, n in enumerate(nodes) if f"{id(layer)}_ib-{i}" in keys]


def walk(model, prefix=""):
    """Yield every `Call` of `model`, nested models expanded, inputs before their users.

    A nested model yields its own call first and then the calls of its
    layers (named `outer/inner`); its inner tensors are not the outer ones,
    so callers that propagate values along the graph link them with
    `nested_links`, and callers that count cost skip the model's own call.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise TypeError(f"{model.name} is not a Functional model; only Functional graphs can be walked")
    for layer in model.layers:  # topological order (Keras builds it from node depths)
        for node in _model_nodes(model, layer):
            yield Call(f"{prefix}{layer.name}", layer, tuple(node.input_tensors), tuple(node.outputs))
            if is_nested_model(layer):
                yield from walk(layer, prefix=f"{prefix}{layer.name}/")


def is_nested_model(layer):
    """A sub-model used as a layer (its own layers are walked, not the model)."""
    return isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth")


def nested_links(call):
    """For a nested-model call: pairs (inner tensor, outer tensor) for its inputs and outputs.

    The inner model's input tensors take the values of the outer inputs, and
    the outer outputs take the values of the inner outputs.
    """
    inner = call.layer
    ins = list(zip(inner.inputs, call.inputs))
    outs = list(zip(call.outputs, inner.outputs))
    return ins, outs


def spatial_shape(tensor):
    """(H, W) of a 4-D channels-last tensor, else None."""
    shape = tuple(tensor.shape)
    return tuple(shape[1:3]) if len(shape) == 4 else None
