"""GoogLeNet (Inception v1): Szegedy, Liu, Jia, Sermanet, Reed, Anguelov,
Erhan, Vanhoucke & Rabinovich, "Going Deeper with Convolutions", CVPR 2015.

`googlenet` is Table 1 of the paper (and its Figure 3):

    conv1_7x7  7x7/2 conv 64          224 -> 112
    pool1      3x3/2 max pool         112 -> 56, then LRN (norm1)
    conv2      1x1 conv 64 ("3x3 reduce"), 3x3 conv 192, then LRN (norm2)
    pool2      3x3/2 max pool         56 -> 28
    inception 3a, 3b                  28x28, 256 and 480 channels
    pool3      3x3/2 max pool         28 -> 14
    inception 4a, 4b, 4c, 4d, 4e      14x14, 512, 512, 512, 528, 832 channels
    pool4      3x3/2 max pool         14 -> 7
    inception 5a, 5b                  7x7, 832 and 1024 channels
    avg_pool   global average pooling (the paper's 7x7/1 average pool)
    dropout    40% (`dropout`)
    predictions linear, `num_classes` logits

An inception module (section 4, Figure 2(b)) concatenates four branches:
a 1x1 convolution; a 1x1 reduction then a 3x3 convolution; a 1x1 reduction
then a 5x5 convolution; a 3x3/1 max pooling then a 1x1 projection. Every
convolution, the reductions and projections included, is followed by a ReLU.
The branch widths are the columns of Table 1 (`INCEPTION_BLOCKS`). At
224x224x3 with 1000 classes the network has 6,998,552 parameters without
the auxiliary classifiers (the arithmetic is in tests/test_models_googlenet.py).

Auxiliary classifiers (section 5), after inception 4a and 4d when
`aux_logits=True`: 5x5/3 average pooling (a 4x4 map at 224 input), 1x1
convolution with 128 filters and ReLU, FC 1024 with ReLU, 70% dropout, and a
linear `num_classes`-way layer. The paper adds their losses with weight 0.3
during training and discards them at inference; that is the training code's
job (`kerascnn.models.auxiliary`). With `aux_logits=True` the model has exactly
three outputs, in this order: `[predictions, aux1_predictions,
aux2_predictions]`; with `aux_logits=False`, one. Each auxiliary head adds
3,188,840 (after 4a) and 3,190,888 (after 4d) parameters at 224/1000.

Departures and choices, each for a stated reason:
- The 5x5 branch uses a real 5x5 kernel, as Table 1 and Figure 2 say.
  torchvision's `googlenet` uses a 3x3 kernel there (a bug kept for its
  pretrained weights, pytorch/vision#906), which is why it has 6,624,904
  parameters and not the paper's count.
- Max pooling uses `padding="same"`, so Table 1's 112 -> 56 -> 28 -> 14 -> 7
  come out and any input size works (32x32 gives 16, 8, 4, 2, 1). At even
  sizes this equals the reference Caffe model's and torchvision's ceil-mode
  pooling (one extra row and column at the bottom and right).
- conv1 is preceded by an explicit symmetric zero padding of 3 (`conv1_pad`),
  as the Caffe model and torchvision pad it; Keras' "same" would pad 2 at the
  top and 3 at the bottom and shift the sampling grid by one pixel.
- LRN (Figure 3; the paper gives no constants) uses
  `LocalResponseNormalization`'s defaults, those of AlexNet: n=5, k=2,
  alpha=1e-4, beta=0.75.
- The auxiliary pooling is "valid" as in the paper, and "same" only where
  the map is smaller than its 5x5 window (paper stem: inputs of 64 pixels
  or less, whose 4a map is at most 4x4; 32x32 gives 1x1), so small
  inputs still work; its FC 1024 layer's input size follows the input size.
- `batch_norm=True` is the later batch-normalised GoogLeNet (after Ioffe &
  Szegedy 2015, "Batch Normalization", the "Inception v2"-style form that
  torchvision's `googlenet` also uses): batch normalisation between every
  convolution and its ReLU, auxiliary 1x1 convolutions included, with
  convolutions without bias (the BN shift replaces it), and no LRN, which
  that paper removes as unnecessary with BN (its section 4.2.1). Momentum
  0.9 and epsilon 1e-5 are PyTorch's BatchNorm2d defaults, as in the rest of
  kerascnn (torchvision's googlenet uses epsilon 1e-3). Widths unchanged.
- Initialisation (the paper does not give one): He normal with fan-IN for
  the convolutions (`CONV_INIT`, here), He normal for the auxiliary FC 1024
  layers and Glorot uniform for the logits (`models.common`). The project's
  fan-out `common.CONV_INIT` (right for VGG and ResNet, whose convolutions
  have as many outputs as inputs or are followed by BN) does not work here:
  the 1x1 reductions and projections have far fewer outputs than inputs
  (832 -> 32), so fan-out scaling multiplies the forward variance by up to
  26 per layer; the activations roughly double per inception module (RMS
  0.3 after 3a, 130 after 5b, logits RMS 189 at 224x224) and the initial
  cross-entropy of a 10-class 32x32 model is 22.9. Measured on the
  synthetic set (2,048 32x32 images, 10 classes, SGD momentum 0.9, batch
  64, 3 epochs): fan-out diverged to NaN in all four runs (lr 0.01 and
  0.05, with and without auxiliary heads); fan-in starts at 2.44 and
  reaches 58% (lr 0.05) and 78% (lr 0.05, auxiliary heads) test accuracy.

`layout="torchvision"` (with `batch_norm=True`) builds the network
torchvision's `googlenet` holds (torchvision/models/googlenet.py), so that its
weights import one to one (`import-weights torchvision googlenet`): batch
norm with epsilon 0.001 after every convolution (its BasicConv2d), a 3x3
kernel in the "5x5" branch (a bug kept for its pretrained weights,
pytorch/vision#906), and a 2x2/2 max pooling before inception 5a (its
`maxpool4`) instead of Table 1's 3x3/2. Its ceil-mode poolings equal the
"same" poolings here at 224x224. Without auxiliary heads it has
torchvision's 6,624,904 trainable parameters at 224/1000. The auxiliary
heads, when asked for, stay the paper's (5x5/3 average pooling);
torchvision's pool adaptively to 4x4, so its `aux1.*`/`aux2.*` weights are
not imported and the import builds `aux_logits=False`. torchvision's
`transform_input` is not built in: it only undoes the ImageNet
normalisation, which the weights file records instead (mean = std = 127.5).

`googlenet_cifar` keeps 32x32 inputs at a useful resolution: the stem is
one 3x3/1 convolution with 192 filters (no pooling, no LRN), as in the
widely used CIFAR GoogLeNet of kuangliu/pytorch-cifar, followed by the same
inception 3a..5b and pools, so the maps are 32x32 (3a, 3b), 16x16 (4a-4e)
and 8x8 (5a, 5b). Only the stem is taken from that network: its inception
modules replace the 5x5 convolution by two 3x3 ones and it has no dropout;
here the modules are the paper's (real 5x5) and `dropout` keeps its 0.4.
"""

import collections
import functools

import keras

from kerascnn.errors import ConfigError
from kerascnn.layers import LocalResponseNormalization
from kerascnn.models.common import (
    batch_normalization,
    DENSE_INIT,
    LOGITS_INIT,
    check_common_args,
    fresh_each_layer,
    classifier_logits,
    global_pool,
)
from kerascnn.registry import register_model

# One row of Table 1: the inception module's name and branch widths.
Inception = collections.namedtuple(
    "Inception", "name n1x1 n3x3_reduce n3x3 n5x5_reduce n5x5 pool_proj"
)

INCEPTION_BLOCKS = (
    Inception("3a", 64, 96, 128, 16, 32, 32),      # 256 channels out
    Inception("3b", 128, 128, 192, 32, 96, 64),    # 480
    Inception("4a", 192, 96, 208, 16, 48, 64),     # 512
    Inception("4b", 160, 112, 224, 24, 64, 64),    # 512
    Inception("4c", 128, 128, 256, 24, 64, 64),    # 512
    Inception("4d", 112, 144, 288, 32, 64, 64),    # 528
    Inception("4e", 256, 160, 320, 32, 128, 128),  # 832
    Inception("5a", 256, 160, 320, 32, 128, 128),  # 832
    Inception("5b", 384, 192, 384, 48, 128, 128),  # 1024
)
# The 3x3/2 max pooling that follows a module (Table 1).
POOL_AFTER = {"3b": "pool3", "4e": "pool4"}
# Section 5: the auxiliary classifiers sit on top of these modules.
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}

# He et al. 2015 with fan_in, std = sqrt(2 / (k_h * k_w * in_channels)): keeps
# the forward variance through the 1x1 reductions (see the module docstring).
CONV_INIT = fresh_each_layer(keras.initializers.VarianceScaling(
    scale=2.0, mode="fan_in", distribution="untruncated_normal"
))

STEMS = ("paper", "cifar")
LAYOUTS = ("paper", "torchvision")
# torchvision's BasicConv2d: BatchNorm2d(eps=0.001).
TORCHVISION_BN_EPSILON = 1e-3
AUX_POOL_SIZE, AUX_POOL_STRIDE = 5, 3
AUX_FILTERS = 128
AUX_UNITS = 1024
AUX_DROPOUT = 0.7  # section 5: "a dropout layer with 70% ratio of dropped outputs"


def _conv(x, filters, kernel, name, batch_norm, strides=1, padding="same", bn_epsilon=None):
    """Convolution then ReLU, or convolution (no bias), batch norm, ReLU."""
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        activation=None if batch_norm else "relu",
        use_bias=not batch_norm,
        kernel_initializer=CONV_INIT,
        name=name,
    )(x)
    if batch_norm:
        epsilon = {} if bn_epsilon is None else {"epsilon": bn_epsilon}
        x = batch_normalization(x, f"{name}_bn", **epsilon)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _max_pool(x, name, size=3):
    """Table 1's 3x3/2 max pooling, "same" padding (see the module docstring)."""
    return keras.layers.MaxPooling2D(size, strides=2, padding="same", name=name)(x)


def inception_module(x, spec, batch_norm, branch5_kernel=5, bn_epsilon=None):
    """One inception module (section 4, Figure 2(b)) with Table 1's widths."""
    prefix = f"inception_{spec.name}"
    conv = functools.partial(_conv, batch_norm=batch_norm, bn_epsilon=bn_epsilon)
    branch1 = conv(x, spec.n1x1, 1, f"{prefix}_1x1")
    branch3 = conv(x, spec.n3x3_reduce, 1, f"{prefix}_3x3_reduce")
    branch3 = conv(branch3, spec.n3x3, 3, f"{prefix}_3x3")
    branch5 = conv(x, spec.n5x5_reduce, 1, f"{prefix}_5x5_reduce")
    branch5 = conv(branch5, spec.n5x5, branch5_kernel, f"{prefix}_5x5")  # a real 5x5 unless torchvision
    pool = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{prefix}_pool")(x)
    pool = conv(pool, spec.pool_proj, 1, f"{prefix}_pool_proj")
    return keras.layers.Concatenate(name=f"{prefix}_output")([branch1, branch3, branch5, pool])


def auxiliary_classifier(x, num_classes, prefix, batch_norm, bn_epsilon=None):
    """An auxiliary classifier of section 5; returns its logits (float32)."""
    h, w = x.shape[1:3]
    padding = "same" if min(h, w) < AUX_POOL_SIZE else "valid"
    x = keras.layers.AveragePooling2D(
        AUX_POOL_SIZE, strides=AUX_POOL_STRIDE, padding=padding, name=f"{prefix}_pool"
    )(x)
    x = _conv(x, AUX_FILTERS, 1, f"{prefix}_conv", batch_norm, bn_epsilon=bn_epsilon)
    x = keras.layers.Flatten(name=f"{prefix}_flatten")(x)
    x = keras.layers.Dense(
        AUX_UNITS, activation="relu", kernel_initializer=DENSE_INIT, name=f"{prefix}_fc"
    )(x)
    x = keras.layers.Dropout(AUX_DROPOUT, name=f"{prefix}_dropout")(x)
    # Linear logits in float32 under mixed precision, like `classifier_logits`.
    return keras.layers.Dense(
        num_classes, kernel_initializer=LOGITS_INIT, dtype="float32", name=f"{prefix}_predictions"
    )(x)


def _check_flag(name, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False. Received: {name}={value!r}")


def _check_googlenet_args(num_classes, input_shape, dropout, include_top, batch_norm, aux_logits, stem, layout):
    check_common_args(num_classes, input_shape, dropout, include_top)
    _check_flag("batch_norm", batch_norm)
    _check_flag("aux_logits", aux_logits)
    if stem not in STEMS:
        raise ConfigError(f"stem must be one of {', '.join(STEMS)}. Received: stem={stem!r}")
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}. Received: layout={layout!r}")
    if layout == "torchvision" and not batch_norm:
        raise ConfigError("layout='torchvision' is the batch-normalised GoogLeNet: pass batch_norm=True")


def _stem(inputs, stem, batch_norm, bn_epsilon):
    """Table 1's layers before inception 3a ("paper"), or one 3x3/1 convolution of 192 filters ("cifar")."""
    conv = functools.partial(_conv, batch_norm=batch_norm, bn_epsilon=bn_epsilon)
    if stem != "paper":
        return conv(inputs, 192, 3, "conv1_3x3")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = conv(x, 64, 7, "conv1_7x7", strides=2, padding="valid")
    x = _max_pool(x, "pool1")
    if not batch_norm:
        x = LocalResponseNormalization(name="norm1")(x)
    x = conv(x, 64, 1, "conv2_reduce")
    x = conv(x, 192, 3, "conv2_3x3")
    if not batch_norm:
        x = LocalResponseNormalization(name="norm2")(x)
    return _max_pool(x, "pool2")


def GoogLeNet(
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    dropout=0.4,
    batch_norm=False,
    aux_logits=True,
    stem="paper",
    pooling=None,
    name="googlenet",
    layout="paper",
):
    """Build GoogLeNet with the Functional API; outputs logits.

    Args:
        num_classes: size of the `predictions` layer (and of the auxiliary ones).
        input_shape: (height, width, channels).
        include_top: whether to add the classifier; without it the model
            returns the inception 5b map (or its pooling, see `pooling`) and
            has no auxiliary classifiers either.
        dropout: dropout before `predictions` (paper: 0.4). The auxiliary
            classifiers always use the paper's 0.7.
        batch_norm: batch normalisation between every convolution and its
            ReLU, convolutions without bias, and no LRN.
        aux_logits: add the auxiliary classifiers after 4a and 4d; the model
            then outputs `[predictions, aux1_predictions, aux2_predictions]`.
        stem: "paper" (Table 1) or "cifar" (one 3x3/1 convolution with 192
            filters, no pooling, no LRN).
        pooling: None, "avg" or "max"; applied when `include_top=False`.
        name: model name (the registry name for registered variants).
        layout: "paper", or "torchvision" (needs `batch_norm=True`): BN
            epsilon 0.001, 3x3 kernels in the "5x5" branches
            (pytorch/vision#906) and a 2x2/2 pool4, the layout of
            torchvision's `googlenet` and its weights (see the module
            docstring; the auxiliary heads stay the paper's).
    """
    _check_googlenet_args(num_classes, input_shape, dropout, include_top, batch_norm, aux_logits, stem, layout)
    torchvision = layout == "torchvision"
    bn_epsilon = TORCHVISION_BN_EPSILON if torchvision else None
    aux_logits = aux_logits and include_top
    if aux_logits and any(d is None for d in input_shape[:2]):
        raise ConfigError(
            "aux_logits=True needs a fixed input size (the auxiliary FC layers flatten a map); "
            f"use aux_logits=False. Received: input_shape={input_shape}"
        )

    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, stem, batch_norm, bn_epsilon)

    aux_outputs = []
    for spec in INCEPTION_BLOCKS:
        x = inception_module(x, spec, batch_norm, 3 if torchvision else 5, bn_epsilon)
        if aux_logits and spec.name in AUX_AFTER:
            aux_outputs.append(
                auxiliary_classifier(x, num_classes, AUX_AFTER[spec.name], batch_norm, bn_epsilon)
            )
        if spec.name in POOL_AFTER:
            # torchvision's maxpool4 is MaxPool2d(2, stride=2, ceil_mode=True).
            pool4_is_2x2 = torchvision and POOL_AFTER[spec.name] == "pool4"
            x = _max_pool(x, POOL_AFTER[spec.name], 2 if pool4_is_2x2 else 3)

    if not include_top:
        return keras.Model(inputs, global_pool(x, pooling), name=name)

    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = classifier_logits(x, num_classes)
    if aux_logits:
        return keras.Model(inputs, [logits, *aux_outputs], name=name)
    return keras.Model(inputs, logits, name=name)


@register_model
def googlenet(
    num_classes=1000, input_shape=(224, 224, 3), include_top=True, dropout=0.4,
    batch_norm=False, aux_logits=True, pooling=None, name="googlenet", layout="paper",
):
    """GoogLeNet / Inception v1 (Szegedy et al. 2015, Table 1), real 5x5 branches, auxiliary classifiers.

    Outputs `[predictions, aux1_predictions, aux2_predictions]` with
    `aux_logits=True` (the default, for training as in section 5), one
    output with `aux_logits=False`. Arguments as for
    `kerascnn.models.googlenet.GoogLeNet`.
    """
    return GoogLeNet(
        num_classes=num_classes, input_shape=input_shape, include_top=include_top,
        dropout=dropout, batch_norm=batch_norm, aux_logits=aux_logits, stem="paper",
        pooling=pooling, name=name, layout=layout,
    )


@register_model
def googlenet_cifar(
    num_classes=10, input_shape=(32, 32, 3), include_top=True, dropout=0.4,
    batch_norm=True, aux_logits=False, pooling=None, name="googlenet_cifar",
):
    """GoogLeNet for 32x32 CIFAR: a 3x3/1 conv-192 stem, then inception 3a-5b at 32, 16 and 8 pixels.

    The stem of kuangliu/pytorch-cifar: one 3x3/1 convolution with 192
    filters, no pooling and no LRN, so the inception modules see 32x32,
    16x16 and 8x8 maps instead of the paper stem's 4x4, 2x2 and 1x1.
    `batch_norm` defaults to True (as in that network): it is trained from
    scratch without the paper's LRN and auxiliary classifiers, the aids the
    paper used to get gradients through 22 layers, and batch normalisation
    is what replaces them (Ioffe & Szegedy 2015 train their Inception that
    way). `aux_logits` defaults to False; with True the heads pool the 16x16
    maps of 4a and 4d to 4x4, as the paper's do at 224. Arguments as for
    `kerascnn.models.googlenet.GoogLeNet`.
    """
    return GoogLeNet(
        num_classes=num_classes, input_shape=input_shape, include_top=include_top,
        dropout=dropout, batch_norm=batch_norm, aux_logits=aux_logits, stem="cifar",
        pooling=pooling, name=name,
    )
