"""airbench94: Jordan's fast CIFAR-10 network (2024), the yardstick of the fast recipes.

Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (arXiv
2404.00498, 2024), the network of `airbench94.py` in KellerJordan/cifar10-airbench:

    whiten   2x2 convolution, 3 -> 24 channels, "valid" (32x32 -> 31x31), bias; GELU
    block1   conv3x3 24 -> 64,   max-pool 2, BN, GELU, conv3x3 64 -> 64,   BN, GELU   (15x15)
    block2   conv3x3 64 -> 256,  max-pool 2, BN, GELU, conv3x3 256 -> 256, BN, GELU   (7x7)
    block3   conv3x3 256 -> 256, max-pool 2, BN, GELU, conv3x3 256 -> 256, BN, GELU   (3x3)
    head     max-pool 3 (3x3 -> 1x1), linear 256 -> 10 without bias, logits times 1/9

1.97M weights. The 24 channels of the first layer are the +/- pairs of the 12
components of a 2x2x3 patch: the recipe sets them as a patch whitening of the
training images and freezes them (`--whiten`, `kerascnn.training.whitening`).
The convolutions have no bias (a batch norm follows each) and start as
`DiracStart`: PyTorch's default uniform draw with the first c_in filters
replaced by the identity, so each block starts by passing its input through.
Batch norm keeps 0.6 of its running statistics a step (airbench's momentum
0.6; torchvision's is Keras' 0.9), and its scale is frozen at 1 by the
recipe (`freeze_bn_scale`). airbench's epsilon is 1e-12; here it is 1.001e-5
(`BN_EPSILON` below).

The recipe (`kerascnn.recipes`, `fit airbench94 --recipe fast`) is airbench's,
in the mean-loss form Keras computes; what it changes is said there.
"""

import keras

from kerascnn.errors import ConfigError
from kerascnn.layers import GELU
from kerascnn.models.common import (
    DIRAC_CONV_INIT,
    batch_normalization,
    check_common_args,
    classifier_logits,
    conv2d,
    global_pool,
)
from kerascnn.registry import register_model

WIDTHS = (64, 256, 256)
WHITEN_KERNEL = 2
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL**2  # + and - of each patch component
# airbench's BatchNorm(momentum=0.6) keeps 0.6 of the running statistics a step
# (PyTorch's momentum argument 0.4 is the new batch's weight).
BN_MOMENTUM = 0.6
# airbench's 1e-12 only matters for channels of near-zero variance. cuDNN's batch
# norm takes no epsilon under 1e-5 (CUDNN_BN_MIN_EPSILON; Keras 2 raised its fused
# layer's to 1.001e-5), so the network is the same on a GPU and on the CPU.
BN_EPSILON = 1.001e-5
LOGIT_SCALE = 1 / 9
# The activation's class: the exact GELU of PyTorch's nn.GELU(), whose training pass is one fused
# loop each way on the CPU (kerascnn.layers.GELU; the network's bfloat16 step 1.68x faster, benchmarks/NOTES.md 54).
# benchmarks/gelu.py sets it to a Keras Activation("gelu") to compare.
GELU_LAYER = GELU


# The network's own start, shared with alexnet_cifar's and the VGGs' conv_init="dirac".
CONV_START = DIRAC_CONV_INIT


def _conv(x, filters, name):
    return conv2d(filters, 3, padding="same", use_bias=False, kernel_initializer=CONV_START, name=name)(x)


def _bn_gelu(x, name):
    x = batch_normalization(x, f"{name}_bn", epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
    return GELU_LAYER(name=f"{name}_gelu")(x)


@register_model
def airbench94(
    num_classes=10, input_shape=(32, 32, 3), include_top=True, widths=WIDTHS, pooling=None,
    logit_scale=LOGIT_SCALE, name="airbench94",
):
    """airbench94 (Jordan 2024): 2x2 whitening conv, three conv-pool-BN-GELU blocks 64-256-256, logits x 1/9.

    `widths` are the three blocks' channels; `logit_scale` multiplies the
    logits (airbench's 1/9, `kerascnn.models.common.classifier_logits`).
    At other input sizes the head's 3x3 max-pool becomes a global max-pool
    over whatever map is left, which is what it is at 32x32.
    """
    check_common_args(num_classes, input_shape, 0.0, include_top)
    if len(widths) != 3 or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ConfigError(f"widths must be three positive integers. Received: widths={widths!r}")
    inputs = keras.Input(shape=input_shape, name="images")
    x = conv2d(WHITEN_WIDTH, WHITEN_KERNEL, padding="valid", use_bias=True, kernel_initializer=CONV_START,
               name="whiten")(inputs)
    x = GELU_LAYER(name="whiten_gelu")(x)
    for i, filters in enumerate(widths, start=1):
        x = _conv(x, filters, f"block{i}_conv1")
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = _bn_gelu(x, f"block{i}_conv1")
        x = _conv(x, filters, f"block{i}_conv2")
        x = _bn_gelu(x, f"block{i}_conv2")
    if not include_top:
        return keras.Model(inputs, global_pool(x, pooling), name=name)
    x = keras.layers.GlobalMaxPooling2D(name="head_pool")(x)
    logits = classifier_logits(x, num_classes, scale=logit_scale, use_bias=False)
    return keras.Model(inputs, logits, name=name)
