"""Copy weights into a network by layer name, with shape checks.

Every model of the project names its layers as keras.applications does
(`block1_conv1`, `fc1`, `predictions`, `conv2_block1_1_conv`, ...), so the
layers of two networks of one family, or of a Keras application, pair up by
name. A layer whose weights do not fit is one of:

- the classifier (`predictions`, GoogLeNet's `aux*_predictions`) of another
  class count: re-initialised, as in any fine-tuning (Yosinski et al. 2014);
- a fully connected layer whose input width differs because the flattened
  feature map depends on the image size (VGG's and AlexNet's first FC
  layer): re-initialised;
- anything else (a backbone layer of another width or kernel): an error
  naming the layer and both shapes, since silently training a half-loaded
  backbone wastes a run.

Nothing is assigned until every layer has been checked.
"""

import dataclasses
import pathlib

import numpy as np

from kerascnn.errors import ConfigError, DataError


@dataclasses.dataclass
class CopyReport:
    """What `copy_by_name` did.

    Attributes:
        loaded: layers whose weights were copied.
        reinitialised: {layer: reason} for layers left as initialised because
            only the classifier or an image-size-dependent FC input differs.
        new: layers with weights that the source does not have.
    """

    loaded: list
    reinitialised: dict
    new: list

    def describe(self):
        parts = [f"{len(self.loaded)} layers loaded"]
        if self.reinitialised:
            parts.append(
                "re-initialised " + "; ".join(f"{name} ({why})" for name, why in self.reinitialised.items())
            )
        if self.new:
            parts.append(f"{len(self.new)} layers not in the source, left as initialised: {', '.join(self.new)}")
        return ", ".join(parts)

    def to_dict(self):
        return {"loaded": list(self.loaded), "reinitialised": dict(self.reinitialised), "new": list(self.new)}


def layer_arrays(model):
    """{layer name: [arrays in `layer.weights` order]} of the layers that have weights."""
    return {layer.name: [np.asarray(w.numpy()) for w in layer.weights] for layer in model.layers if layer.weights}


def is_classifier(name):
    return name == "predictions" or name.endswith("_predictions")


def _shapes(arrays):
    return [tuple(a.shape) for a in arrays]


def _why_mismatch_is_fine(name, source, target):
    """A reason when the mismatch is only the class count or the FC input width, else None."""
    if len(source) != 2 or len(target) != 2 or len(source[0]) != 2 or len(target[0]) != 2:
        return None  # not a dense layer (kernel, bias)
    (s_in, s_out), (t_in, t_out) = source[0], target[0]
    if is_classifier(name) and s_out != t_out:
        return f"{s_out} classes in the source, {t_out} here"
    if s_out == t_out and s_in != t_in and source[1] == target[1]:
        return f"input of {s_in} features in the source, {t_in} here (image size)"
    return None


def copy_by_name(network, source, source_desc, model_name=None):
    """Copy `source` ({layer name: [arrays]}) into `network`; return a `CopyReport`.

    Raises ConfigError (one line) on a backbone shape mismatch or when no
    layer matches at all; in both cases `network` is unchanged.
    """
    plan, reinit, new = [], {}, []
    for layer in network.layers:
        if not layer.weights:
            continue
        if layer.name not in source:
            new.append(layer.name)
            continue
        arrays = source[layer.name]
        s_shapes, t_shapes = _shapes(arrays), [tuple(w.shape) for w in layer.weights]
        if s_shapes == t_shapes:
            plan.append((layer, arrays))
            continue
        why = _why_mismatch_is_fine(layer.name, s_shapes, t_shapes)
        if why is None:
            raise ConfigError(
                f"{source_desc} does not fit {model_name or network.name}: layer {layer.name} has weights of shape "
                f"{_fmt(s_shapes)} there but {_fmt(t_shapes)} here; build the same architecture "
                "(model, --width-multiplier, --batch-norm, --head)"
            )
        reinit[layer.name] = why
    if not plan:
        raise ConfigError(
            f"{source_desc} has no layer named like those of {model_name or network.name}; "
            "pass weights of the same model family"
        )
    for layer, arrays in plan:
        for variable, value in zip(layer.weights, arrays):
            variable.assign(value.astype(variable.dtype) if hasattr(value, "astype") else value)
    return CopyReport([layer.name for layer, _ in plan], reinit, new)


def _fmt(shapes):
    return " + ".join("x".join(str(d) for d in s) or "scalar" for s in shapes)


# --- reading local weights -----------------------------------------------------


def read_keras_file(path):
    """{layer name: [arrays]} of a `.keras` file (a kerascnn weights file or a run's best.keras)."""
    import kerascnn.layers  # noqa: F401  (registers the custom layers the file may use)
    from kerascnn.storage.readback import load_keras_model

    return layer_arrays(load_keras_model(path, "pass a .keras file written by kerascnn (a run's best.keras, "
                                               "or one from `import-weights`)"))


def _h5_keys(network):
    """The names Keras 3 gives each layer inside a `.weights.h5` file.

    `model.save_weights` stores layer i under `layers/<snake_case class
    name>[_<n>]`, numbered in `model.layers` order per class
    (keras.saving.saving_lib), not under the layer's own name.
    """
    from keras.src.utils.naming import to_snake_case

    used, keys = {}, {}
    for layer in network.layers:
        key = to_snake_case(layer.__class__.__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys[layer.name] = key
    return keys


def read_weights_h5(path, network):
    """{layer name: [arrays]} of a `.weights.h5` file written by `save_weights` of the same architecture.

    Such a file has no layer names, only each layer's place in the model, so
    it is read through `network`'s layer order; the shape checks of
    `copy_by_name` catch a file of another architecture.
    """
    import h5py

    from kerascnn.storage import readback

    readback.check_hdf5(path, "pass a .weights.h5 file Keras wrote (model.save_weights)")
    try:
        with h5py.File(path, "r") as f:
            group = f["layers"]
            keys = _h5_keys(network)
            out = {}
            for layer in network.layers:
                key = keys[layer.name]
                if key in group and "vars" in group[key] and len(group[key]["vars"]):
                    vars_ = group[key]["vars"]
                    out[layer.name] = [np.asarray(vars_[str(i)]) for i in range(len(vars_))]
            return out
    except (OSError, KeyError) as e:
        raise DataError(f"cannot read {path} as a Keras .weights.h5 file ({e})") from None


def kind_of(path):
    """"run", "keras" or "h5" for a --weights PATH; DataError when it is none of them."""
    p = pathlib.Path(path)
    if p.is_dir():
        return "run"
    if not p.exists():
        raise DataError(
            f"--weights {path} does not exist; pass imagenet, a .keras or .weights.h5 file, or a run directory"
        )
    if p.name.endswith(".weights.h5"):
        return "h5"
    if p.suffix == ".keras":
        return "keras"
    raise DataError(f"--weights {path} is not a .keras or .weights.h5 file nor a run directory")
