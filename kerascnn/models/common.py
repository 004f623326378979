"""Pieces shared by the model families: initialisers, input checks, heads."""

import keras

from kerascnn.errors import ConfigError
from kerascnn.layers import BatchNormalization, Conv2D, DiracStart
from kerascnn.validation import positive_float, positive_int, rate


def fresh_each_layer(initializer):
    """The serialised form of `initializer`, from which every layer builds an initializer of its own.

    A Keras 3 initializer instance draws its seed once, when it is created, and
    then returns the same values for every variable of the same shape. Shared
    module-level instances would therefore give same-shaped layers identical
    kernels (VGG-16's conv4_2 and conv4_3, for example) and ignore the run's
    --seed (they were created at import). A layer given this spec creates the
    initializer when it is built, its seed drawn from the seeded generators.
    """
    return keras.initializers.serialize(initializer)


# He et al. 2015 ("Delving Deep into Rectifiers") with fan_out, as torchvision
# initialises VGG and ResNet convolutions: std = sqrt(2 / (k_h * k_w * out_channels)).
CONV_INIT = fresh_each_layer(keras.initializers.VarianceScaling(
    scale=2.0, mode="fan_out", distribution="untruncated_normal"
))
# He et al. 2015's forward form, std = sqrt(2 / (k_h * k_w * in_channels)),
# which keeps the variance of a plain ReLU stack's activations through depth
# (`conv_init="fan_in"` of the VGGs, for training without batch norm).
FORWARD_CONV_INIT = fresh_each_layer(keras.initializers.VarianceScaling(
    scale=2.0, mode="fan_in", distribution="untruncated_normal"
))
# airbench's start (Jordan 2024, airbench94.py): PyTorch's default uniform draw,
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with filter j < C_in the identity, so that
# each convolution starts by passing its input through (`kerascnn.layers.DiracStart`).
DIRAC_CONV_INIT = fresh_each_layer(DiracStart())
# The convolution starts a builder's `conv_init` chooses from.
CONV_INITS = {"fan_out": CONV_INIT, "fan_in": FORWARD_CONV_INIT, "dirac": DIRAC_CONV_INIT}


def conv_initializer(conv_init):
    """The kernel initializer named by `conv_init` ("fan_out", "fan_in" or "dirac"); ConfigError otherwise."""
    if conv_init not in CONV_INITS:
        raise ConfigError(f"conv_init must be one of {', '.join(map(repr, CONV_INITS))}. Received: conv_init={conv_init!r}")
    return CONV_INITS[conv_init]


# Hidden fully connected layers (followed by ReLU): He et al. 2015 with fan_in,
# std = sqrt(2 / fan_in). torchvision's N(0, 0.01) was tuned for 4096-wide
# layers; measured here it leaves a plain VGG-11 at chance for its first
# epochs (synthetic set, 64 SGD steps at lr 0.01: cross-entropy 2.301 with
# N(0, 0.01), 0.26 with He), so it is not used.
DENSE_INIT = fresh_each_layer(keras.initializers.HeNormal())
# The linear classifier: Glorot & Bengio 2010 uniform, Keras' default.
LOGITS_INIT = fresh_each_layer(keras.initializers.GlorotUniform())


# torchvision's BatchNorm2d defaults (its momentum 0.1 is Keras' 0.9), so
# weights and statistics ported from torchvision behave the same.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# The class of every builder's batch norm: Keras' layer computed by TensorFlow's
# fused kernel, whose training steps measured 1.14-1.29x faster for vgg16_bn and
# resnet18 in mixed_bfloat16 on the CPU (benchmarks/NOTES.md 16b);
# benchmarks/fused_batchnorm.py sets it to keras.layers.BatchNormalization to compare.
BATCH_NORM = BatchNormalization


def batch_normalization(x, name, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, **kwargs):
    """Batch normalisation (Ioffe & Szegedy 2015) with torchvision's constants unless given.

    `kwargs` are the layer's other arguments (e.g. ResNet's zero gamma_initializer).
    """
    return BATCH_NORM(momentum=momentum, epsilon=epsilon, name=name, **kwargs)(x)


# The convolution class of the VGG and ResNet builders: Keras' layer with a
# matrix-product kernel gradient on maps of 16 pixels or fewer in bfloat16 on
# the CPU, whose training step measured 1.13x faster for vgg16_bn there
# (benchmarks/NOTES.md 34); benchmarks/small_map_conv.py sets it to
# keras.layers.Conv2D to compare.
CONV2D = Conv2D


def conv2d(*args, **kwargs):
    """A `CONV2D` layer; the arguments are `keras.layers.Conv2D`'s."""
    return CONV2D(*args, **kwargs)


def check_common_args(num_classes, input_shape, dropout, include_top):
    """Validate the arguments every builder shares; raise ConfigError."""
    if include_top:
        positive_int("num_classes", num_classes)
    if len(input_shape) != 3:
        raise ConfigError(
            f"input_shape must be (height, width, channels). Received: input_shape={input_shape}"
        )
    rate("dropout", dropout)


def scaled_width(channels, width_multiplier):
    """Channel count scaled by `width_multiplier`, rounded, at least 8."""
    positive_float("width_multiplier", width_multiplier)
    return max(8, int(round(channels * width_multiplier)))


def classifier_logits(x, num_classes, scale=1.0, use_bias=True):
    """The final `predictions` layer: linear logits, computed in float32.

    Under a mixed-precision policy the logits stay float32 so that the
    softmax cross-entropy does not overflow in float16 (as keras.applications does).

    `scale` multiplies the logits (`logits = scale * (W h + b)`), the
    `Mul(0.125)` of Page's cifar10-fast and the `scaling_factor` 1/9 of
    Jordan's airbench. The networks compute the same functions (W can absorb
    the factor); what changes is the step: a gradient step moves the logits
    by about `lr * scale**2 * |h|**2`, which for a wide head such as
    AlexNet's 4,096 units is what limits the learning rate (see
    `kerascnn.models.alexnet.alexnet_cifar`). 1.0 adds no layer.
    `use_bias=False` drops b (airbench's head).
    """
    if not isinstance(scale, (int, float)) or scale <= 0:
        raise ConfigError(f"logit_scale must be a positive number. Received: logit_scale={scale}")
    logits = keras.layers.Dense(
        num_classes,
        use_bias=use_bias,
        kernel_initializer=LOGITS_INIT,
        dtype="float32",
        name="predictions",
    )(x)
    if scale != 1.0:
        logits = keras.layers.Rescaling(scale, dtype="float32", name="logit_scale")(logits)
    return logits


def global_pool(x, pooling):
    """Optional pooling of the feature map when `include_top=False`."""
    if pooling is None:
        return x
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    raise ConfigError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
