"""ResNet: He, Zhang, Ren & Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016, and its pre-activation form from He, Zhang, Ren &
Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.

ImageNet networks (Table 1 of the CVPR paper): a stem `conv1` (7x7/2
convolution with 64 filters, then 3x3/2 max pooling), four stages `conv2_x`
to `conv5_x` of residual blocks with 64, 128, 256 and 512 base filters, the
first block of `conv3_x` to `conv5_x` halving the resolution with stride 2,
then global average pooling and a `num_classes`-way fully connected layer.
ResNet-18 and -34 use basic blocks (two 3x3 convolutions), ResNet-50, -101
and -152 bottleneck blocks (1x1 reduce, 3x3, 1x1 expand by 4). Batch
normalisation follows every convolution and the ReLU follows the addition
(section 3.4); shortcuts are identities, or projections (1x1 convolution and
batch normalisation, option B of section 3.3) where the shape changes.

CIFAR-10 networks (section 4.2): a 3x3 convolution with 16 filters, three
stages of n basic blocks with 16, 32 and 64 filters on 32x32, 16x16 and 8x8
maps, global average pooling and the fully connected layer: 6n + 2 layers,
resnet20 (n = 3) and resnet56 (n = 9). As in the paper these use option A
shortcuts: the identity, subsampled with stride 2 and padded with zero
channels where the shape changes, so shortcuts add no parameters.

Pre-activation (the ECCV paper, Fig. 4(e), "full pre-activation"): each
block is BN-ReLU-conv, BN-ReLU-conv, plus the shortcut, with nothing after
the addition. As in its section 4, the activation of `conv1` is kept (the
first block takes the already activated stem output and does not repeat
it), a block that changes shape takes its shortcut from the pre-activated
input, and a final BN-ReLU (`post_bn`, `post_relu`) precedes the pooling.

Departures, each for a stated reason:
- Bottleneck blocks downsample on the 3x3 convolution, not on the first
  1x1 convolution as in the paper ("ResNet v1.5", as torchvision and
  fb.resnet.torch): a strided 1x1 convolution discards three quarters of its
  input, the strided 3x3 does not; the parameter count is unchanged and
  torchvision weights map one to one. Basic blocks stride the first 3x3
  convolution, as the paper.
- Convolutions carry no bias (each is followed by batch normalisation, which
  cancels it, as in torchvision); batch normalisation uses torchvision's
  momentum 0.9 and epsilon 1e-5.
- `downsample_on="1x1"`, `conv_bias=True` and `bn_epsilon=1.001e-5` give the
  original ResNet v1 of the paper exactly as keras.applications builds
  ResNet50/101/152 (stride on the first 1x1 convolution of a bottleneck,
  biases on every convolution, Keras' epsilon), so its ImageNet weights load
  layer by layer and give the same outputs; `fit --weights imagenet` selects
  these options for the bottleneck networks (`kerascnn.weights.imagenet`).
- Strided convolutions and the stem's max pooling are preceded by explicit
  symmetric zero padding (`*_pad` layers, as keras.applications does), so
  output sizes and pixel alignment equal torchvision's for every input size;
  Keras' `padding="same"` pads only bottom and right at stride 2 on even
  sizes, which shifts every sampling grid by one pixel. Zero
  padding before the max pooling equals -inf padding because its input is
  non-negative (after ReLU).
- `stem="auto"` (the default of the ImageNet variants) uses a CIFAR stem,
  3x3/1 convolution, batch norm and ReLU without max pooling, when the input
  is at most 64 pixels on a side: the ImageNet stem would shrink 32x32 images
  to 8x8 before the first stage and to 1x1 at `conv5`. This is the usual
  adaptation of ResNet-18 to CIFAR (e.g. kuangliu/pytorch-cifar).
- Option A shortcuts subsample with a 1x1 max pooling of stride 2 (exactly
  `x[:, ::2, ::2, :]`) and append the zero channels after the identity ones,
  as fb.resnet.torch's shortcut type A; the zero padding is built from
  built-in layers (`Permute`, `ZeroPadding2D`) so `.keras` files load in safe
  mode without importing kerascnn.
- Initialisation: He normal with fan-out for convolutions (the paper cites He
  et al. 2015; torchvision uses the fan-out form), batch norm gamma 1 and beta
  0, Glorot uniform for the classifier (see `models.common`).

At 224x224x3 with 1000 classes resnet18 has 11,689,512 and resnet50
25,557,032 trainable parameters, torchvision's counts (Keras adds the batch
norm moving statistics as non-trainable weights). resnet20 has 269,722 and
resnet56 853,018 with 10 classes, the paper's 0.27M and 0.85M (Table 6).
"""

import keras

from kerascnn.errors import ConfigError
from kerascnn.models.common import (
    BN_EPSILON,
    batch_normalization,
    conv2d,
    CONV_INIT,
    check_common_args,
    classifier_logits,
    global_pool,
    scaled_width,
)
from kerascnn.registry import register_model

IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)

# Output channels of a block per base width.
EXPANSION = {"basic": 1, "bottleneck": 4}

# Blocks per stage: Table 1 of the CVPR paper for the ImageNet networks,
# n = (depth - 2) / 6 blocks per stage for the CIFAR networks of section 4.2.
RESNET_VARIANTS = {
    "resnet18": ("basic", (2, 2, 2, 2), IMAGENET_WIDTHS),
    "resnet34": ("basic", (3, 4, 6, 3), IMAGENET_WIDTHS),
    "resnet50": ("bottleneck", (3, 4, 6, 3), IMAGENET_WIDTHS),
    "resnet101": ("bottleneck", (3, 4, 23, 3), IMAGENET_WIDTHS),
    "resnet152": ("bottleneck", (3, 8, 36, 3), IMAGENET_WIDTHS),
    "resnet20": ("basic", (3, 3, 3), CIFAR_WIDTHS),
    "resnet56": ("basic", (9, 9, 9), CIFAR_WIDTHS),
}

# Inputs with both sides at most this many pixels get the CIFAR stem from "auto".
CIFAR_STEM_UP_TO = 64

STEMS = ("auto", "imagenet", "cifar")
# The project's defaults: v1.5 bottlenecks, bias-free convolutions, torchvision's epsilon.
_V1_DEFAULTS = {"downsample_on": "3x3", "conv_bias": False, "bn_epsilon": BN_EPSILON}
SHORTCUTS = ("projection", "zero_pad")


DOWNSAMPLE_ON = ("3x3", "1x1")


def _bn(x, name, epsilon=BN_EPSILON, gamma_initializer="ones"):
    return batch_normalization(x, name, epsilon=epsilon, gamma_initializer=gamma_initializer)


def _conv(x, filters, kernel_size, strides, name, use_bias=False, kernel_initializer=CONV_INIT):
    """Convolution `{name}_conv` (bias-free by default); symmetric `{name}_pad` when strided.

    A strided 1x1 convolution needs no padding: "same" and "valid" agree.
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return conv2d(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv",
    )(x)


def _stem(x, width, stem, v1=None):
    """`conv1`: conv-BN-ReLU, then 3x3/2 max pooling for the ImageNet stem."""
    v1 = v1 or _V1_DEFAULTS
    if stem == "imagenet":
        x = _conv(x, width, 7, 2, "conv1", v1["conv_bias"])
    else:
        x = _conv(x, width, 3, 1, "conv1", v1["conv_bias"])
    x = _bn(x, "conv1_bn", v1["bn_epsilon"])
    x = keras.layers.ReLU(name="conv1_relu")(x)
    if stem == "imagenet":
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    return x


def _zero_pad_shortcut(x, out_channels, strides, prefix):
    """Option A: `x[:, ::s, ::s, :]` followed by zero channels up to `out_channels`."""
    in_channels = x.shape[-1]
    if out_channels < in_channels:
        raise ConfigError(
            f"shortcut='zero_pad' cannot reduce {in_channels} channels to {out_channels} "
            f"in {prefix}; use shortcut='projection'. Received: shortcut='zero_pad'"
        )
    if strides > 1:
        x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{prefix}_0_pool")(x)
    if out_channels > in_channels:
        # ZeroPadding2D pads the two axes after the batch axis: move the
        # channels there, pad them at the end, and move them back.
        x = keras.layers.Permute((3, 1, 2), name=f"{prefix}_0_to_channels_first")(x)
        x = keras.layers.ZeroPadding2D(
            ((0, out_channels - in_channels), (0, 0)), name=f"{prefix}_0_pad"
        )(x)
        x = keras.layers.Permute((2, 3, 1), name=f"{prefix}_0_to_channels_last")(x)
    return x


def _residual(x, block, width, strides, preact, prefix, v1=None, zero_init_last=False):
    """The residual branch: basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1).

    A bottleneck strides its 3x3 convolution (v1.5) or, with
    `downsample_on="1x1"`, its first 1x1 convolution (the paper's v1).
    `zero_init_last` starts the branch's last BN scale (or, in a
    pre-activation block, which has no BN there, its last convolution) at
    zero, so that the block starts as its shortcut.
    """
    v1 = v1 or _V1_DEFAULTS
    if block == "basic":
        kernels, strided, widths = (3, 3), 0, (width, width)
    else:
        strided = 0 if v1["downsample_on"] == "1x1" else 1
        kernels, widths = (1, 3, 1), (width, width, width * EXPANSION["bottleneck"])
    last = len(kernels) - 1
    for i, (kernel_size, filters) in enumerate(zip(kernels, widths)):
        zero = zero_init_last and i == last
        kernel_init = "zeros" if zero and preact else CONV_INIT
        x = _conv(x, filters, kernel_size, strides if i == strided else 1, f"{prefix}_{i + 1}", v1["conv_bias"],
                  kernel_initializer=kernel_init)
        if i < last or not preact:
            x = _bn(x, f"{prefix}_{i + 1}_bn", v1["bn_epsilon"], gamma_initializer="zeros" if zero else "ones")
        if i < last:
            x = keras.layers.ReLU(name=f"{prefix}_{i + 1}_relu")(x)
    return x


def _block(x, block, width, strides, shortcut, preact, input_activated, prefix, v1=None, zero_init_last=False):
    """One residual block named `{prefix}_*` (`conv3_block1_1_conv`, ...)."""
    v1 = v1 or _V1_DEFAULTS
    out_channels = width * EXPANSION[block]
    reshapes = strides != 1 or x.shape[-1] != out_channels
    inputs = x
    if preact and not input_activated:
        x = _bn(x, f"{prefix}_preact_bn", v1["bn_epsilon"])
        x = keras.layers.ReLU(name=f"{prefix}_preact_relu")(x)
    # A shape-changing pre-activation block takes its shortcut from the
    # activated input (ECCV paper, authors' code); identities take the raw sum.
    source = x if preact else inputs
    if not reshapes:
        short = inputs
    elif shortcut == "projection":
        short = _conv(source, out_channels, 1, strides, f"{prefix}_0", v1["conv_bias"])
        if not preact:
            short = _bn(short, f"{prefix}_0_bn", v1["bn_epsilon"])
    else:
        short = _zero_pad_shortcut(source, out_channels, strides, prefix)
    x = _residual(x, block, width, strides, preact, prefix, v1, zero_init_last)
    x = keras.layers.Add(name=f"{prefix}_add")([short, x])
    if not preact:
        x = keras.layers.ReLU(name=f"{prefix}_out")(x)
    return x


def _check_resnet_args(block, stackwise_blocks, stage_widths, batch_norm, stem, shortcut, pooling):
    if not batch_norm:
        raise ConfigError(
            "ResNets always use batch normalisation: it is part of every residual block "
            "(He et al. 2016) and deep ResNets do not train without it. Received: batch_norm=False"
        )
    if block not in EXPANSION:
        raise ConfigError(f"block must be 'basic' or 'bottleneck'. Received: block={block!r}")
    if stem not in STEMS:
        raise ConfigError(f"stem must be 'auto', 'imagenet' or 'cifar'. Received: stem={stem!r}")
    if shortcut not in SHORTCUTS:
        raise ConfigError(
            f"shortcut must be 'projection' (option B) or 'zero_pad' (option A). "
            f"Received: shortcut={shortcut!r}"
        )
    if pooling not in (None, "avg", "max"):
        raise ConfigError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    counts = tuple(stackwise_blocks)
    if not counts or any(not isinstance(n, int) or n < 1 for n in counts):
        raise ConfigError(
            f"stackwise_blocks must be one positive block count per stage. "
            f"Received: stackwise_blocks={stackwise_blocks}"
        )
    if len(stage_widths) != len(counts):
        raise ConfigError(
            f"stage_widths needs one width per stage ({len(counts)}). Received: stage_widths={stage_widths}"
        )


def _v1_options(downsample_on, conv_bias, bn_epsilon):
    """The options that tell the keras.applications (v1) ResNets from torchvision's (v1.5)."""
    if downsample_on not in DOWNSAMPLE_ON:
        raise ConfigError(f"downsample_on must be '3x3' or '1x1'. Received: downsample_on={downsample_on!r}")
    if not isinstance(bn_epsilon, (int, float)) or bn_epsilon <= 0:
        raise ConfigError(f"bn_epsilon must be a positive number. Received: bn_epsilon={bn_epsilon}")
    return {"downsample_on": downsample_on, "conv_bias": bool(conv_bias), "bn_epsilon": float(bn_epsilon)}


def ResNet(
    stackwise_blocks,
    block="basic",
    stage_widths=IMAGENET_WIDTHS,
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    dropout=0.0,
    batch_norm=True,
    stem="auto",
    shortcut="projection",
    preact=False,
    width_multiplier=1.0,
    pooling=None,
    downsample_on="3x3",
    conv_bias=False,
    bn_epsilon=BN_EPSILON,
    zero_init_residual=False,
    logit_scale=1.0,
    name="resnet",
):
    """Build a ResNet with the Functional API; outputs logits.

    Stage i is named `conv{i + 2}` (`conv2` follows the stem `conv1`, as in
    Table 1 of He et al. 2016); its first block has stride 1 in the first
    stage and stride 2 in the others.

    Args:
        stackwise_blocks: number of residual blocks in each stage.
        block: "basic" (two 3x3 convolutions) or "bottleneck" (1x1, 3x3 and
            1x1 convolutions, output 4x the base width).
        stage_widths: base number of filters of each stage; the stem has the
            width of the first stage.
        num_classes: size of the `predictions` layer.
        input_shape: (height, width, channels).
        include_top: whether to add the classifier; without it the model
            returns the last feature map (or its pooling, see `pooling`).
        dropout: dropout rate between the global average pooling and the
            classifier (paper: none, 0.0).
        batch_norm: must be True; accepted so every builder takes the same
            arguments.
        stem: "imagenet" (7x7/2 conv, 3x3/2 max pool), "cifar" (3x3/1 conv,
            no pooling) or "auto" (cifar when the input is at most 64 pixels
            on a side, imagenet otherwise or when the size is unknown).
        shortcut: where a block changes shape, "projection" (1x1 conv + BN,
            option B) or "zero_pad" (strided identity padded with zero
            channels, option A); other blocks use the identity.
        preact: full pre-activation blocks (He et al., ECCV 2016).
        width_multiplier: scales every stage width (and the stem); 1.0 = paper.
        pooling: None, "avg" or "max"; applied when `include_top=False`.
        downsample_on: which convolution of a bottleneck block strides:
            "3x3" (v1.5, torchvision) or "1x1" (the paper's v1, Keras).
        conv_bias: give every convolution a bias (keras.applications
            ResNets have them; they are redundant before batch norm).
        bn_epsilon: batch norm epsilon (1e-5 torchvision, 1.001e-5 Keras).
        zero_init_residual: start every residual branch's last BN scale at
            zero (Goyal et al. 2017, "Accurate, Large Minibatch SGD", 5.1;
            torchvision's `zero_init_residual`), so each block starts as its
            shortcut and the deep net as a shallow one; in pre-activation
            blocks, which have no BN there, the branch's last convolution
            (timm's `zero_init_last`).
        logit_scale: multiplies the logits, as the fast CIFAR-10 trainers do
            (`kerascnn.models.common.classifier_logits`); 1.0 adds no layer.
        name: model name (the registry name for registered variants).
    """
    check_common_args(num_classes, input_shape, dropout, include_top)
    _check_resnet_args(block, stackwise_blocks, stage_widths, batch_norm, stem, shortcut, pooling)
    v1 = _v1_options(downsample_on, conv_bias, bn_epsilon)
    if stem == "auto":
        known = [d for d in input_shape[:2] if d is not None]
        stem = "cifar" if known and min(known) <= CIFAR_STEM_UP_TO else "imagenet"
    widths = [scaled_width(w, width_multiplier) for w in stage_widths]

    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, widths[0], stem, v1)
    for stage, (blocks, width) in enumerate(zip(stackwise_blocks, widths)):
        for i in range(blocks):
            # The stem ends in BN-ReLU: the first block must not repeat it.
            first = stage == 0 and i == 0
            strides = 2 if stage > 0 and i == 0 else 1
            x = _block(x, block, width, strides, shortcut, preact, first, f"conv{stage + 2}_block{i + 1}", v1,
                       zero_init_residual)
    if preact:
        x = _bn(x, "post_bn", v1["bn_epsilon"])
        x = keras.layers.ReLU(name="post_relu")(x)

    if not include_top:
        return keras.Model(inputs, global_pool(x, pooling), name=name)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    return keras.Model(inputs, classifier_logits(x, num_classes, scale=logit_scale), name=name)


def _register_variant(name, block, stack, stage_widths, summary, preact=False):
    """Register one named ResNet as a small builder function.

    The ImageNet networks default to 224x224x3, 1000 classes, the automatic
    stem and projection shortcuts; the CIFAR networks (three stages) to
    32x32x3, 10 classes, the CIFAR stem and option A shortcuts, as in the paper.
    """
    cifar = len(stack) == len(CIFAR_WIDTHS)
    defaults = (
        (10, (32, 32, 3), "cifar", "zero_pad")
        if cifar
        else (1000, (224, 224, 3), "auto", "projection")
    )

    def builder(
        num_classes=defaults[0],
        input_shape=defaults[1],
        include_top=True,
        dropout=0.0,
        batch_norm=True,
        stem=defaults[2],
        shortcut=defaults[3],
        width_multiplier=1.0,
        pooling=None,
        downsample_on="3x3",
        conv_bias=False,
        bn_epsilon=BN_EPSILON,
        zero_init_residual=False,
        logit_scale=1.0,
        name=name,
    ):
        return ResNet(
            stack,
            block=block,
            stage_widths=stage_widths,
            num_classes=num_classes,
            input_shape=input_shape,
            include_top=include_top,
            dropout=dropout,
            batch_norm=batch_norm,
            stem=stem,
            shortcut=shortcut,
            preact=preact,
            width_multiplier=width_multiplier,
            pooling=pooling,
            downsample_on=downsample_on,
            conv_bias=conv_bias,
            bn_epsilon=bn_epsilon,
            zero_init_residual=zero_init_residual,
            logit_scale=logit_scale,
            name=name,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{summary}\n\nArguments as for `kerascnn.models.resnet.ResNet`."
    return register_model(builder)


def _summary(name, block, stack):
    depth = sum(stack) * (2 if block == "basic" else 3) + 2
    if len(stack) == len(CIFAR_WIDTHS):
        return (
            f"ResNet-{depth} for CIFAR (He et al. 2016, section 4.2): n={stack[0]} basic blocks "
            f"per stage, 16/32/64 filters, zero-padding shortcuts (option A)"
        )
    return f"ResNet-{depth} (He et al. 2016, Table 1): {block} blocks {list(stack)}" + (
        ", stride on the 3x3 conv (v1.5)" if block == "bottleneck" else ""
    )


for _name, (_block_kind, _stack, _widths) in RESNET_VARIANTS.items():
    globals()[_name] = _register_variant(
        _name, _block_kind, _stack, _widths, _summary(_name, _block_kind, _stack)
    )

preact_resnet18 = _register_variant(
    "preact_resnet18",
    "basic",
    RESNET_VARIANTS["resnet18"][1],
    IMAGENET_WIDTHS,
    "Pre-activation ResNet-18 (He et al., Identity Mappings, ECCV 2016): BN-ReLU-conv basic blocks [2, 2, 2, 2]",
    preact=True,
)
