"""VGG's incremental-depth initialisation (`fit vgg16 --init-from RUN_DIR_OF_vgg11`).

Simonyan & Zisserman 2015, section 3.1: "we began with training the
configuration A, shallow enough to be trained with random initialisation.
Then, when training deeper architectures, we initialised the first four
convolutional layers and the last three fully-connected layers with the
layers of net A (the intermediate layers were initialised randomly)."

In the project's names (`kerascnn.models.vgg`) net A's first four
convolutions are block1_conv1, block2_conv1, block3_conv1 and block3_conv2;
deeper configurations have layers of those names with the same shapes
(stage widths 64, 128, 256, 256 -> 256 in every configuration), and the
three FC layers are fc1, fc2 and predictions. The same rule, the source's
first four convolutions and its three FC layers, serves any shallower source
(vgg8 or vgg13 too); in the `_bn` variants each copied convolution brings its
batch normalisation (`block{s}_bn{i}`).
"""

from kerascnn.storage import rundir
from kerascnn.errors import ConfigError
from kerascnn.models.vgg import VGG_VARIANTS, conv_layer_names
from kerascnn.weights.transfer import read_keras_file

FC_LAYERS = ("fc1", "fc2", "predictions")
COPIED_CONVS = 4


def _variant(name, what):
    if name not in VGG_VARIANTS:
        raise ConfigError(
            f"--init-from initialises a VGG from a shallower VGG run (Simonyan & Zisserman 2015, 3.1); "
            f"{what} is {name}, not a VGG ({', '.join(VGG_VARIANTS)})"
        )
    return VGG_VARIANTS[name]


def read_source(run_dir, model):
    """(source config dict) of a finished or running VGG run shallower than `model`; ConfigError otherwise."""
    run_dir = rundir.require_run_dir(run_dir, need=(rundir.CONFIG, rundir.BEST))
    config = rundir.read_config(run_dir)
    source = config["model"]
    target_stack, target_bn = _variant(model, "the model to train")
    source_stack, source_bn = _variant(source, f"the model of {run_dir}")
    if sum(source_stack) >= sum(target_stack):
        raise ConfigError(
            f"--init-from needs a shallower VGG: {run_dir} trained {source} ({sum(source_stack) + 3} weight layers), "
            f"not fewer than {model}'s {sum(target_stack) + 3}"
        )
    if source_bn != target_bn:
        raise ConfigError(
            f"--init-from {run_dir}: {source} and {model} differ in batch normalisation; "
            f"initialise {model} from a {'_bn ' if target_bn else 'plain '}VGG run"
        )
    return config


def layers_to_copy(source_model):
    """The source layers section 3.1 copies: the first four convolutions (with their BN) and fc1, fc2, predictions."""
    stack, batch_norm = VGG_VARIANTS[source_model]
    convs = conv_layer_names(stack)[:COPIED_CONVS]
    names = []
    for conv in convs:
        names.append(conv)
        if batch_norm:
            names.append(conv.replace("_conv", "_bn"))
    return names + list(FC_LAYERS)


def initialise(network, run_dir, source_config, model):
    """Copy the section 3.1 layers of the run in `run_dir` into `network`.

    Returns {"init_from", "source_model", "copied", "initialised"}; raises
    ConfigError (nothing copied) when a layer is missing or has another
    shape (another head, width, image size or class count).
    """
    source_model = source_config["model"]
    arrays = read_keras_file(rundir.require_run_dir(run_dir) / rundir.BEST)
    names = layers_to_copy(source_model)
    pairs = []
    for name in names:
        try:
            layer = network.get_layer(name)
        except ValueError:
            raise ConfigError(f"--init-from {run_dir}: {model} has no layer {name} to take from {source_model}") from None
        src = arrays.get(name)
        if src is None:
            raise ConfigError(f"--init-from {run_dir}: {source_model}'s checkpoint has no layer {name}")
        s_shapes = [tuple(a.shape) for a in src]
        t_shapes = [tuple(w.shape) for w in layer.weights]
        if s_shapes != t_shapes:
            raise ConfigError(
                f"--init-from {run_dir}: layer {name} is {s_shapes} in {source_model} but {t_shapes} in {model}; "
                "train with the same --head, --width-multiplier, --image-size and data (class count) as the source run"
            )
        pairs.append((layer, src))
    for layer, src in pairs:
        for variable, value in zip(layer.weights, src):
            variable.assign(value)
    initialised = [layer.name for layer in network.layers if layer.weights and layer.name not in names]
    return {
        "init_from": str(run_dir),
        "source_model": source_model,
        "copied": names,
        "initialised": initialised,
    }
