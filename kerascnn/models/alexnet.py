"""AlexNet and its relatives.

- `alexnet`: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with
  Deep Convolutional Neural Networks", NIPS 2012, section 3.5 and Figure 2:
  227x227x3 input (the paper says 224, but only 227 gives its 55x55 conv1
  map with an 11x11/4 filter), conv 96 11x11/4, 256 5x5, 384 3x3, 384 3x3,
  256 3x3; conv2, conv4 and conv5 see only the half of the previous layer on
  their own GPU (the two towers, `groups=2`); ReLU; Local Response
  Normalization after conv1 and conv2, before pooling (section 3.3), over
  each tower's own half of the maps (LRN `groups=2`), as each GPU computed
  it; `fit alexnet --model-parallel` puts the towers on two devices
  (`kerascnn.runtime.model_parallel`);
  overlapping 3x3/2 max pooling (section 3.4) after both normalisations and
  conv5; FC 4096-4096 with dropout 0.5 (section 4.2). 60,965,224 parameters
  with 1000 classes.
- `alexnet_v2`: the single-tower 64-192-384-256-256 network of torchvision
  (after Krizhevsky's "One weird trick", 2014), no LRN by default;
  61,100,840 parameters at 224x224 with 1000 classes.
- `zfnet`: Zeiler & Fergus, "Visualizing and Understanding Convolutional
  Networks", ECCV 2014, Figure 3: AlexNet with a 7x7/2 first layer and a
  stride-2 second layer, so the first layers keep more resolution (110x110
  and 26x26 maps); normalisation after pooling, as in their figure.
- `alexnet_cifar`: the 32x32 AlexNet of CIFAR-10 studies: 3x3 convs
  64-128-256-256-256, 2x2 pooling after the 1st, 2nd and 5th, FC 4096-4096.

Every variant accepts smaller inputs than its paper size (down to CIFAR's
32x32): a 3x3/2 pooling whose input map is already smaller than its window
uses "same" padding instead of the paper's "valid", which changes nothing at
the paper sizes. The classifier flattens whatever map remains, so the first
FC layer's size follows the input size (as in keras.applications' VGG).
"""

import collections

import keras

from kerascnn.errors import ConfigError
from kerascnn.layers import LocalResponseNormalization
from kerascnn.models.common import (
    batch_normalization,
    CONV_INIT,
    DENSE_INIT,
    check_common_args,
    conv_initializer,
    fresh_each_layer,
    classifier_logits,
    global_pool,
    scaled_width,
)
from kerascnn.registry import register_model
from kerascnn.validation import positive_int

# One convolution of a variant. pad: an int (explicit zero padding, then a
# "valid" convolution, as the papers count it) or "same". norm: LRN "before"
# or "after" the pooling, or None. pool: None, "valid" or "same".
Conv = collections.namedtuple("Conv", "filters kernel stride pad grouped norm pool bias_one")

ALEXNET_PAPER = (
    Conv(96, 11, 4, 0, False, "before", "valid", False),
    Conv(256, 5, 1, "same", True, "before", "valid", True),
    Conv(384, 3, 1, "same", False, None, None, False),
    Conv(384, 3, 1, "same", True, None, None, True),
    Conv(256, 3, 1, "same", True, None, "valid", True),
)
ALEXNET_V2 = (
    Conv(64, 11, 4, 2, False, "before", "valid", False),
    Conv(192, 5, 1, "same", False, "before", "valid", False),
    Conv(384, 3, 1, "same", False, None, None, False),
    Conv(256, 3, 1, "same", False, None, None, False),
    Conv(256, 3, 1, "same", False, None, "valid", False),
)
# Zeiler & Fergus Figure 3: 224 -> 110 (7x7/2, pad 1) -> 55 (pool) -> 26
# (5x5/2) -> 13 (pool) -> 13 -> 13 -> 13 -> 6 (pool). Their 55 and 13 need
# "same" pooling; their 26 needs a "valid" second convolution.
ZFNET = (
    Conv(96, 7, 2, 1, False, "after", "same", False),
    Conv(256, 5, 2, 0, False, "after", "same", False),
    Conv(384, 3, 1, "same", False, None, None, False),
    Conv(384, 3, 1, "same", False, None, None, False),
    Conv(256, 3, 1, "same", False, None, "valid", False),
)

# Section 5 of the paper: weights N(0, 0.01); biases 1 in conv2, conv4, conv5
# and the fully connected hidden layers ("to accelerate the early stages of
# learning by providing the ReLUs with positive inputs"), 0 elsewhere.
PAPER_WEIGHT_INIT = fresh_each_layer(keras.initializers.RandomNormal(mean=0.0, stddev=0.01))
INITS = ("paper", "he_normal")


def _initializers(init, bias_one, dense=False):
    if init == "paper":
        return PAPER_WEIGHT_INIT, keras.initializers.Constant(1.0 if bias_one else 0.0)
    return (DENSE_INIT if dense else CONV_INIT), "zeros"


def overlapping_max_pool(x, name, padding="valid", size=3, stride=2):
    """3x3/2 max pooling (section 3.4); "same" where the map is smaller than the window."""
    h, w = x.shape[1:3]
    if padding == "valid" and h is not None and min(h, w) < size:
        padding = "same"
    return keras.layers.MaxPooling2D(size, stride, padding=padding, name=name)(x)


def _conv_bn_relu(x, filters, kernel, name, batch_norm, stride=1, padding="same", groups=1,
                  kernel_initializer=CONV_INIT, bias_initializer="zeros"):
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, groups=groups,
        activation=None if batch_norm else "relu",
        kernel_initializer=kernel_initializer, bias_initializer=bias_initializer, name=name,
    )(x)
    if batch_norm:
        x = batch_normalization(x, f"{name}_bn")
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _classifier(x, num_classes, dropout, init, batch_norm=False, units=4096, first=6, logit_scale=1.0):
    """Flatten, two ReLU FC layers each followed by dropout, then the logits."""
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (first, first + 1):
        kernel_init, bias_init = _initializers(init, bias_one=True, dense=True)
        x = keras.layers.Dense(
            units, activation=None if batch_norm else "relu",
            kernel_initializer=kernel_init, bias_initializer=bias_init, name=f"fc{i}",
        )(x)
        if batch_norm:
            x = batch_normalization(x, f"fc{i}_bn")
            x = keras.layers.ReLU(name=f"fc{i}_relu")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return classifier_logits(x, num_classes, scale=logit_scale)


def AlexNetFamily(
    convs,
    num_classes=1000,
    input_shape=(227, 227, 3),
    include_top=True,
    dropout=0.5,
    batch_norm=False,
    use_lrn=True,
    towers=1,
    init="he_normal",
    width_multiplier=1.0,
    fc_units=4096,
    pooling=None,
    name="alexnet",
):
    """Build an AlexNet-style network from a table of `Conv` rows; outputs logits.

    Args:
        convs: the five `Conv` rows of the variant.
        num_classes, input_shape, include_top, pooling, name: as for every model.
        dropout: dropout after fc6 and fc7 (paper: 0.5).
        batch_norm: batch normalisation between each conv/FC layer and its
            ReLU (not in the papers; for comparisons).
        use_lrn: Local Response Normalization where the variant has it
            (paper constants n=5, k=2, alpha=1e-4, beta=0.75).
        towers: 2 splits the grouped layers into two towers (`groups=2`), as
            on the paper's two GPUs, and normalises each tower's half of the
            maps separately (LRN `groups=2`); 1 connects every channel.
            `kerascnn.runtime.model_parallel` places the two towers on two devices.
        init: "paper" (N(0, 0.01) weights, biases of 1 in conv2, conv4, conv5
            and the FC hidden layers) or "he_normal".
        width_multiplier: scales every convolution's filters (1.0 = paper),
            rounded to a multiple of `towers` so that each tower keeps an
            equal half; the same option as `alexnet_cifar`'s.
        fc_units: width of fc6 and fc7 (paper: 4096). At small inputs fc7's
            4096 x 4096 weights are most of the network (16.8M of 20.2M at
            32x32), so thin variants for quick checks set both options.
    """
    check_common_args(num_classes, input_shape, dropout, include_top)
    positive_int("fc_units", fc_units)
    if towers not in (1, 2):
        raise ConfigError(f"towers must be 1 or 2. Received: towers={towers}")
    if init not in INITS:
        raise ConfigError(f"init must be one of {', '.join(INITS)}. Received: init={init!r}")

    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for i, spec in enumerate(convs, start=1):
        if isinstance(spec.pad, int) and spec.pad > 0:
            x = keras.layers.ZeroPadding2D(spec.pad, name=f"conv{i}_pad")(x)
        kernel_init, bias_init = _initializers(init, spec.bias_one)
        filters = scaled_width(spec.filters, width_multiplier)
        filters += -filters % towers
        x = _conv_bn_relu(
            x, filters, spec.kernel, f"conv{i}", batch_norm,
            stride=spec.stride, padding="same" if spec.pad == "same" else "valid",
            groups=towers if spec.grouped else 1,
            kernel_initializer=kernel_init, bias_initializer=bias_init,
        )
        lrn = use_lrn and spec.norm is not None
        # Two towers: each GPU of the paper normalises over its own half of
        # the kernel maps, so no window crosses the tower boundary.
        if lrn and spec.norm == "before":
            x = LocalResponseNormalization(groups=towers, name=f"norm{i}")(x)
        if spec.pool:
            x = overlapping_max_pool(x, f"pool{i}", padding=spec.pool)
        if lrn and spec.norm == "after":
            x = LocalResponseNormalization(groups=towers, name=f"norm{i}")(x)

    if not include_top:
        return keras.Model(inputs, global_pool(x, pooling), name=name)
    return keras.Model(inputs, _classifier(x, num_classes, dropout, init, batch_norm, units=fc_units), name=name)


@register_model
def alexnet(
    num_classes=1000, input_shape=(227, 227, 3), include_top=True, dropout=0.5,
    batch_norm=False, use_lrn=True, towers=2, init="paper", width_multiplier=1.0, fc_units=4096, pooling=None,
    name="alexnet",
):
    """AlexNet (Krizhevsky et al. 2012) as published: two towers, LRN, 60,965,224 parameters."""
    return AlexNetFamily(
        ALEXNET_PAPER, num_classes=num_classes, input_shape=input_shape, include_top=include_top,
        dropout=dropout, batch_norm=batch_norm, use_lrn=use_lrn, towers=towers, init=init,
        width_multiplier=width_multiplier, fc_units=fc_units, pooling=pooling, name=name,
    )


@register_model
def alexnet_v2(
    num_classes=1000, input_shape=(224, 224, 3), include_top=True, dropout=0.5,
    batch_norm=False, use_lrn=False, width_multiplier=1.0, fc_units=4096, pooling=None, name="alexnet_v2",
):
    """Single-tower AlexNet 64-192-384-256-256 (torchvision's), 61,100,840 parameters."""
    return AlexNetFamily(
        ALEXNET_V2, num_classes=num_classes, input_shape=input_shape, include_top=include_top,
        dropout=dropout, batch_norm=batch_norm, use_lrn=use_lrn, towers=1, init="he_normal",
        width_multiplier=width_multiplier, fc_units=fc_units, pooling=pooling, name=name,
    )


@register_model
def zfnet(
    num_classes=1000, input_shape=(224, 224, 3), include_top=True, dropout=0.5,
    batch_norm=False, use_lrn=True, width_multiplier=1.0, fc_units=4096, pooling=None, name="zfnet",
):
    """ZFNet (Zeiler & Fergus 2014): AlexNet with a 7x7/2 first layer."""
    return AlexNetFamily(
        ZFNET, num_classes=num_classes, input_shape=input_shape, include_top=include_top,
        dropout=dropout, batch_norm=batch_norm, use_lrn=use_lrn, towers=1, init="he_normal",
        width_multiplier=width_multiplier, fc_units=fc_units, pooling=pooling, name=name,
    )


@register_model
def alexnet_cifar(
    num_classes=10, input_shape=(32, 32, 3), include_top=True, dropout=0.5,
    batch_norm=False, width_multiplier=1.0, fc_units=4096, pooling=None, logit_scale=1.0, conv_init="fan_out",
    name="alexnet_cifar",
):
    """AlexNet for 32x32 CIFAR: 3x3 convs 64-128-256-256-256, FC 4096-4096.

    Pooling is 2x2/2 ("same", so other sizes work) after conv1, conv2 and
    conv5, leaving a 4x4x256 map at 32x32. `batch_norm` (after every conv
    and FC hidden layer, before the ReLU) and `dropout` (after fc6 and fc7)
    are independent switches, as in the CIFAR-10 studies that compare them.
    He-normal initialisation; `width_multiplier` thins the convolutions and
    `fc_units` sets the width of fc6 and fc7.

    `logit_scale` multiplies the logits (`kerascnn.models.common.classifier_logits`).
    The fast recipe sets 0.125, as cifar10-fast does: fc7's 4,096 ReLU
    outputs, batch-normalised, have |h|^2 of about 2,000, so one SGD step of
    learning rate 0.2 or more moved the logits by hundreds and training
    diverged (cross-entropy 4.0 after one epoch, docs/results.md#recipes);
    0.125 divides that step by 64 and leaves the function class unchanged.

    `conv_init` picks the convolutions' start (`kerascnn.models.common.CONV_INITS`):
    "fan_out" is the He normal above; "dirac" is airbench's (Jordan 2024), each
    convolution starting as the identity on its first C_in filters, so that
    with batch norm a block starts by passing its input through.
    """
    check_common_args(num_classes, input_shape, dropout, include_top)
    positive_int("fc_units", fc_units)
    kernel_initializer = conv_initializer(conv_init)
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for i, filters in enumerate((64, 128, 256, 256, 256), start=1):
        x = _conv_bn_relu(x, scaled_width(filters, width_multiplier), 3, f"conv{i}", batch_norm,
                          kernel_initializer=kernel_initializer)
        if i in (1, 2, 5):
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"pool{i}")(x)
    if not include_top:
        return keras.Model(inputs, global_pool(x, pooling), name=name)
    logits = _classifier(x, num_classes, dropout, "he_normal", batch_norm, units=fc_units, logit_scale=logit_scale)
    return keras.Model(inputs, logits, name=name)
