"""Keras' ImageNet weights (keras.applications) for vgg16, vgg19 and resnet50/101/152.

The files are the ones `keras.applications` itself downloads (Keras 3.15
sources, `keras/src/applications/vgg16.py`, `vgg19.py`, `resnet.py`): the same
names, URLs and MD5 hashes, in the same cache folder
(`$KERAS_HOME/models`, default `~/.keras/models`), so a file Keras already
fetched is reused and one placed there by hand is found without a network.

They are read by building the keras.applications model with `weights=None`
and `load_weights(file)`; `kerascnn.weights.transfer` then copies them into
the project's network by layer name (the project's names follow
keras.applications: `block1_conv1` ... `fc1`, `fc2`, `predictions`;
`conv1_conv`, `conv2_block1_1_conv`, ...).

Keras' weights were trained on Caffe-preprocessed images (`preprocess_input`
with `mode="caffe"`: RGB -> BGR, minus the ImageNet mean per channel, no
scaling), so runs using them normalise that way (`CAFFE_NORMALIZATION`).
Keras' ResNets are the paper's v1 (He et al. 2016: stride on the first 1x1
convolution of a bottleneck, biases on every convolution, batch norm epsilon
1.001e-5), which `KERAS_COMPATIBLE_OPTIONS` selects in
`kerascnn.models.resnet`.
"""

import dataclasses
import os

from kerascnn.errors import ConfigError, DataError
from kerascnn.weights.transfer import layer_arrays

# Module attribute so tests can point downloads at an address that refuses.
BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# RGB order; `channel_order="bgr"` reverses after normalising (see Preprocessing).
CAFFE_NORMALIZATION = {"mean": [123.68, 116.779, 103.939], "std": [1.0, 1.0, 1.0], "channel_order": "bgr"}
IMAGE_SIZE = (224, 224)

_RESNET_V1 = {"downsample_on": "1x1", "conv_bias": True, "bn_epsilon": 1.001e-5, "stem": "imagenet", "shortcut": "projection"}


@dataclasses.dataclass(frozen=True)
class KerasWeights:
    """One keras.applications ImageNet checkpoint, with and without its classifier.

    Attributes:
        application: the keras.applications constructor name.
        folder: sub-folder of `BASE_URL`.
        md5_top, md5_notop: `file_hash` keras.applications passes to get_file.
        options: builder options that make the project's network the same
            architecture as Keras' (recorded in config.json).
        top_shape: (layer, kernel shape) of the project network for which the
            file with the classifier is worth its size: only then are its
            fully connected layers usable; otherwise the `_notop` file.
    """

    application: str
    folder: str
    md5_top: str
    md5_notop: str
    options: dict
    top_shape: tuple

    def file_name(self, model, top):
        return f"{model}_weights_tf_dim_ordering_tf_kernels{'' if top else '_notop'}.h5"

    def url(self, model, top):
        return f"{BASE_URL}{self.folder}{self.file_name(model, top)}"


KERAS_IMAGENET = {
    # At 224x224 with the paper head, fc1 sees 7 x 7 x 512 = 25088 features.
    "vgg16": KerasWeights(
        "VGG16", "vgg16/", "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc",
        {}, ("fc1", (25088, 4096)),
    ),
    "vgg19": KerasWeights(
        "VGG19", "vgg19/", "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6",
        {}, ("fc1", (25088, 4096)),
    ),
    # The ResNets' top is only the 1000-way classifier.
    "resnet50": KerasWeights(
        "ResNet50", "resnet/", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626",
        _RESNET_V1, ("predictions", (2048, 1000)),
    ),
    "resnet101": KerasWeights(
        "ResNet101", "resnet/", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21",
        _RESNET_V1, ("predictions", (2048, 1000)),
    ),
    "resnet152": KerasWeights(
        "ResNet152", "resnet/", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c",
        _RESNET_V1, ("predictions", (2048, 1000)),
    ),
}


def keras_weights(model):
    """The `KerasWeights` of `model`; ConfigError pointing to import-weights when Keras has none."""
    if model not in KERAS_IMAGENET:
        raise ConfigError(
            f"keras.applications has no ImageNet weights for {model} (it has them for "
            f"{', '.join(KERAS_IMAGENET)}); convert torchvision's with "
            f"`python main.py import-weights torchvision {model}` and pass the file to --weights"
        )
    return KERAS_IMAGENET[model]


def cache_dir():
    """Keras' download cache for models: `$KERAS_HOME/models`, default `~/.keras/models`."""
    return os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")), "models")


def wants_top(model, network):
    """Whether `network` can use the file with the classifier (its fc shapes match Keras')."""
    layer_name, shape = keras_weights(model).top_shape
    try:
        layer = network.get_layer(layer_name)
    except ValueError:
        return False
    return tuple(layer.kernel.shape) == shape


def fetch(model, top):
    """Path of the weights file: from the cache without any network access, else downloaded once.

    A cached file is used as it is (Keras checked its hash when it fetched
    it). A failed download is a DataError naming the URL, the cache folder
    and the file name to put there by hand.
    """
    spec = keras_weights(model)
    name, url, folder = spec.file_name(model, top), spec.url(model, top), cache_dir()
    path = os.path.join(folder, name)
    if os.path.isfile(path):
        return path
    import keras

    try:
        # get_file writes to a temporary name and removes it on failure.
        return keras.utils.get_file(
            name,
            url,
            file_hash=spec.md5_top if top else spec.md5_notop,
            cache_subdir="models",
            cache_dir=os.path.dirname(folder),
        )
    except Exception as e:  # URLError, HTTPError, hash mismatch: all mean "no usable file"
        reason = " ".join(str(e).split())[:200]
        raise DataError(
            f"cannot download the ImageNet weights of {model} from {url} ({reason}); "
            f"download that file on a machine with a network and place it in {folder} as {name}"
        ) from None


def read(model, top, path):
    """{layer name: [arrays]} of the keras.applications model holding the weights in `path`."""
    import keras

    spec = keras_weights(model)
    constructor = getattr(keras.applications, spec.application)
    shape = (*IMAGE_SIZE, 3) if top else (None, None, 3)
    reference = constructor(weights=None, include_top=top, input_shape=shape)
    try:
        reference.load_weights(path)
    except Exception as e:  # a truncated or foreign file
        reason = " ".join(str(e).split())[:200]
        raise DataError(f"cannot read {path} as Keras' {spec.application} weights ({reason}); delete it and retry") from None
    return layer_arrays(reference)


def describe(model, top):
    spec = keras_weights(model)
    return f"keras.applications {spec.application} ImageNet weights ({spec.file_name(model, top)})"
