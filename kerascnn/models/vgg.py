"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015.

Configurations A, B, D and E of Table 1 are VGG-11, -13, -16 and -19: five
stages of 3x3 convolutions (stride 1, padding 1) with 64, 128, 256, 512 and
512 filters, each stage followed by 2x2 max pooling with stride 2, then the
classifier FC-4096, FC-4096, FC-`num_classes` with dropout 0.5 after the
first two (section 2.1 and 3.1).

Departures, each for a stated reason:
- Max pooling uses `padding="same"`: identical to the paper for input sizes
  divisible by 32 (224, 32) and it lets any input size of at least one pixel
  per stage work (MNIST's 28x28 gives 14, 7, 4, 2, 1 instead of failing).
- The `_bn` variants put batch normalisation (Ioffe & Szegedy 2015) between
  each convolution and its ReLU, as torchvision's `vgg*_bn` do; they keep the
  convolution biases so torchvision weights map one to one.
- `head="compact"` (the default for inputs under 64 pixels, i.e. CIFAR)
  replaces FC-4096 by FC-512 so a 32x32 model is not dominated by a 4096-wide
  classifier fed with a 1x1x512 feature map; the structure is unchanged.
- Initialisation: He normal (fan-out, as torchvision) for convolutions, He
  normal (fan-in) for the hidden dense layers and Glorot uniform for the
  logits, instead of the paper's N(0, 0.01) with incremental-depth training,
  so every configuration trains from scratch (see `models.common`).
  `conv_init="fan_in"` gives the convolutions He et al. 2015's forward form,
  std = sqrt(2 / (k_h * k_w * C_in)): without batch norm, fan-out's
  std = sqrt(2 / (k_h * k_w * C_out)) multiplies the forward variance by
  C_in / C_out at every widening (3/64 at block1_conv1, 1/2 at each stage
  after), about 0.006 over VGG-19, so the classifier starts on a near-constant
  feature map. The plain VGGs' default recipe (`scratch`) uses it.

At 224x224x3 with 1000 classes and the paper head, vgg16 has 138,357,544 and
vgg19 has 143,667,240 parameters, the published figures.
"""

import keras

from kerascnn.models.common import (
    batch_normalization,
    conv2d,
    conv_initializer,
    DENSE_INIT,
    check_common_args,
    classifier_logits,
    global_pool,
    scaled_width,
)
from kerascnn.errors import ConfigError
from kerascnn.registry import register_model

STAGE_WIDTHS = (64, 128, 256, 512, 512)

# Convolutions per stage, Table 1 of the paper.
VGG_STACKS = {
    "vgg11": (1, 1, 2, 2, 2),  # configuration A
    "vgg13": (2, 2, 2, 2, 2),  # configuration B
    "vgg16": (2, 2, 3, 3, 3),  # configuration D
    "vgg19": (2, 2, 4, 4, 4),  # configuration E
}

PAPER_HEAD_UNITS = 4096
COMPACT_HEAD_UNITS = 512
# Inputs with a side under this many pixels get the compact head by default.
COMPACT_HEAD_BELOW = 64


def VGG(
    stackwise_convs,
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    dropout=0.5,
    batch_norm=False,
    head="auto",
    width_multiplier=1.0,
    pooling=None,
    conv_init="fan_out",
    logit_scale=1.0,
    name="vgg",
):
    """Build a VGG network with the Functional API; outputs logits.

    Args:
        stackwise_convs: number of 3x3 convolutions in each of the five stages.
        num_classes: size of the `predictions` layer.
        input_shape: (height, width, channels).
        include_top: whether to add the classifier; without it the model
            returns the last feature map (or its pooling, see `pooling`).
        dropout: dropout rate after `fc1` and `fc2` (paper: 0.5).
        batch_norm: batch normalisation between each convolution and its ReLU.
        head: "paper" (FC-4096 x2), "compact" (FC-512 x2) or "auto" (compact
            when the input is smaller than 64 pixels on a side).
        width_multiplier: scales the width of every convolution (1.0 = paper);
            the classifier keeps its width.
        pooling: None, "avg" or "max"; applied when `include_top=False`.
        conv_init: "fan_out" (torchvision's He normal), "fan_in" (He et
            al. 2015's forward form) or "dirac" (airbench's identity start,
            `kerascnn.layers.DiracStart`) for the convolutions.
        logit_scale: multiplies the logits, as the fast CIFAR-10 trainers do
            (`kerascnn.models.common.classifier_logits`); 1.0 adds no layer.
        name: model name (the registry name for registered variants).
    """
    check_common_args(num_classes, input_shape, dropout, include_top)
    if len(stackwise_convs) != len(STAGE_WIDTHS):
        raise ConfigError(f"VGG has 5 stages. Received: stackwise_convs={stackwise_convs}")
    if head not in ("auto", "paper", "compact"):
        raise ConfigError(f"head must be 'auto', 'paper' or 'compact'. Received: head={head!r}")
    kernel_initializer = conv_initializer(conv_init)

    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for stage, (convs, width) in enumerate(zip(stackwise_convs, STAGE_WIDTHS), start=1):
        filters = scaled_width(width, width_multiplier)
        for i in range(1, convs + 1):
            x = conv2d(
                filters,
                3,
                padding="same",
                activation=None if batch_norm else "relu",
                kernel_initializer=kernel_initializer,
                name=f"block{stage}_conv{i}",
            )(x)
            if batch_norm:
                x = batch_normalization(x, f"block{stage}_bn{i}")
                x = keras.layers.ReLU(name=f"block{stage}_relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{stage}_pool")(x)

    if not include_top:
        return keras.Model(inputs, global_pool(x, pooling), name=name)

    if head == "auto":
        small = min(d for d in input_shape[:2] if d is not None) < COMPACT_HEAD_BELOW
        head = "compact" if small else "paper"
    # The width multiplier thins the convolutional stages only, as in
    # MobileNet (Howard et al. 2017): a thinned classifier under dropout 0.5
    # measured far worse (quarter width, 128-unit head: 28% after 3 CIFAR
    # epochs on 5,000 images, against 48% without the dropout).
    units = PAPER_HEAD_UNITS if head == "paper" else COMPACT_HEAD_UNITS
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = keras.layers.Dense(
            units, activation="relu", kernel_initializer=DENSE_INIT, name=f"fc{i}"
        )(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return keras.Model(inputs, classifier_logits(x, num_classes, scale=logit_scale), name=name)


# Every registered VGG: name -> (convolutions per stage, batch_norm). Used by
# `kerascnn.weights.incremental` to tell which runs are shallower VGGs.
VGG_VARIANTS = {}


def conv_layer_names(stackwise_convs):
    """Names of the convolutions of a configuration, input to output (`block1_conv1`, ...)."""
    return [f"block{stage}_conv{i}" for stage, convs in enumerate(stackwise_convs, start=1) for i in range(1, convs + 1)]


def _register_variant(name, stack, batch_norm, summary):
    """Register one named VGG configuration as a small builder function."""
    VGG_VARIANTS[name] = (tuple(stack), batch_norm)

    def builder(
        num_classes=1000,
        input_shape=(224, 224, 3),
        include_top=True,
        dropout=0.5,
        batch_norm=batch_norm,
        head="auto",
        width_multiplier=1.0,
        pooling=None,
        conv_init="fan_out",
        logit_scale=1.0,
        name=name,
    ):
        return VGG(
            stack,
            num_classes=num_classes,
            input_shape=input_shape,
            include_top=include_top,
            dropout=dropout,
            batch_norm=batch_norm,
            head=head,
            width_multiplier=width_multiplier,
            pooling=pooling,
            conv_init=conv_init,
            logit_scale=logit_scale,
            name=name,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{summary}\n\nArguments as for `kerascnn.models.vgg.VGG`."
    return register_model(builder)


_CONFIG_LETTER = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
for _name, _stack in VGG_STACKS.items():
    _convs = sum(_stack)
    _summary = (
        f"VGG-{_convs + 3} (configuration {_CONFIG_LETTER[_name]}, Simonyan & Zisserman 2015): "
        f"{_convs} conv + 3 FC layers"
    )
    globals()[_name] = _register_variant(_name, _stack, False, _summary)
    globals()[_name + "_bn"] = _register_variant(
        _name + "_bn", _stack, True, _summary + ", batch norm after every conv"
    )

# Not a configuration of the paper: one convolution per stage, 5 conv + 3 FC
# weight layers, the shallow end of the family for quick depth comparisons.
vgg8 = _register_variant(
    "vgg8", (1, 1, 1, 1, 1), False, "VGG-8: 5 conv + 3 FC layers, one conv per stage (shallow VGG for comparisons)"
)
