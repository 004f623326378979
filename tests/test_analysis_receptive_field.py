"""Receptive fields: the standard recurrence, checked against hand counts.

Per layer (kernel k, stride s, left padding p, dilation d, k_eff = d(k-1)+1):
j_out = j_in s, r_out = r_in + (k_eff - 1) j_in,
start_out = start_in + ((k_eff - 1) / 2 - p) j_in; the expected values below
are unrolled by hand.
"""

import keras

from kerascnn.analysis.receptive_field import (
    coverage_line,
    field_by_depth,
    last_spatial,
    plot_fields,
    receptive_fields,
)
from kerascnn.models import create_model


def by_name(rows):
    return {r.name: r for r in rows}


def test_alexnet_v2_last_pooling_layer_at_227():
    rows = by_name(receptive_fields(create_model("alexnet_v2", input_shape=(227, 227, 3), include_top=False)))
    # ZeroPadding2D(2): start -2. conv1 11/4: r 11, j 4, start -2 + 5 = 3.
    # pool1 3/2: r 11 + 2*4 = 19, j 8, start 3 + 4 = 7. conv2 5/1 same (pad 2): r 19 + 4*8 = 51.
    # pool2 3/2: r 51 + 2*8 = 67, j 16, start 7 + 8 = 15. conv3-5 3/1 same: r 67 + 3 * 2*16 = 163.
    # pool5 3/2: r 163 + 2*16 = 195, j 32, start 15 + 16 = 31.
    assert (rows["conv1"].size, rows["conv1"].jump, rows["conv1"].start) == ((11, 11), (4, 4), (3, 3))
    assert rows["pool2"].size == (67, 67) and rows["pool2"].start == (15, 15)
    pool5 = rows["pool5"]
    assert pool5.size == (195, 195) and pool5.jump == (32, 32) and pool5.start == (31, 31)
    assert pool5.output_shape == (6, 6, 256)
    # Unit (0, 0) is centred on pixel 31 and sees 31 - 97 .. 31 + 97, clipped: 0..128.
    assert pool5.covered((227, 227)) == ((0, 128), (0, 128))
    # Unit (5, 5) is centred on 31 + 5 * 32 = 191: 94..288, clipped to 94..226.
    assert pool5.covered((227, 227), (5, 5)) == ((94, 226), (94, 226))
    keras.backend.clear_session()


def test_vgg16_last_pooling_layer_at_224():
    rows = receptive_fields(create_model("vgg16", include_top=False))
    pool5 = by_name(rows)["block5_pool"]
    # Stage i (3x3/1 convs, then 2x2/2 pooling) adds 2 * j per conv and j per pooling,
    # with j = 1, 2, 4, 8, 16: 1 + (2*2 + 1) + (2*2 + 1)*2 + (3*2 + 1)*4 + (3*2 + 1)*8 + (3*2 + 1)*16.
    r = 1 + 5 * 1 + 5 * 2 + 7 * 4 + 7 * 8 + 7 * 16
    assert r == 212
    # Each 2x2/2 pooling moves the first centre by j / 2: 0.5 + 1 + 2 + 4 + 8.
    assert pool5.size == (212, 212) and pool5.jump == (32, 32) and pool5.start == (15.5, 15.5)
    assert last_spatial(rows).name == "block5_pool"
    assert [r for _, r in field_by_depth(rows)][:3] == [3, 5, 6]
    keras.backend.clear_session()


def test_same_padding_with_stride_2_pads_like_tensorflow_and_dilation_widens_the_kernel():
    x = keras.Input((16, 17, 3))
    # Height 16, 3x3/2 same: pad_total = (8 - 1) * 2 + 3 - 16 = 1, left 0. Width 17: pad_total 2, left 1.
    y = keras.layers.Conv2D(2, 3, strides=2, padding="same", name="a")(x)
    # Dilation 2: k_eff = 5, valid.
    y = keras.layers.Conv2D(2, 3, dilation_rate=2, name="b")(y)
    rows = by_name(receptive_fields(keras.Model(x, y)))
    assert rows["a"].start == (1, 0) and rows["a"].size == (3, 3) and rows["a"].jump == (2, 2)
    assert rows["b"].size == (3 + 4 * 2, 3 + 4 * 2) and rows["b"].start == (1 + 2 * 2, 0 + 2 * 2)


def test_branches_take_the_largest_field_and_global_pooling_sees_everything():
    x = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(4, 1, name="one")(x)
    b = keras.layers.Conv2D(4, 5, padding="same", name="five")(x)
    m = keras.layers.Concatenate(name="merge")([a, b])
    g = keras.layers.GlobalAveragePooling2D(name="gap")(m)
    rows = by_name(receptive_fields(keras.Model(x, g)))
    assert rows["merge"].size == (5, 5)
    assert rows["gap"].is_global and rows["gap"].size == (16, 16)


def test_googlenet_and_resnet_propagate_through_their_blocks(tmp_path):
    # ResNet-18 at 224: 435 pixels at conv5, the published figure (Araujo et al. 2019, Table 1).
    resnet = receptive_fields(create_model("resnet18", include_top=False))
    assert last_spatial(resnet).size == (435, 435) and last_spatial(resnet).jump == (32, 32)
    cifar = receptive_fields(create_model("resnet20"))  # option A shortcuts permute channels
    last = last_spatial(cifar)
    # 19 3x3 convolutions, each adding 2 * j_in: j_in = 1 for the stem, stage 1 and the
    # strided first conv of stage 2 (8 convs), 2 for the rest of stage 2 and the strided
    # conv of stage 3 (6), 4 for the rest of stage 3 (5).
    assert last.size == (1 + 2 * (8 * 1 + 6 * 2 + 5 * 4),) * 2 == (81, 81)
    path = plot_fields([("resnet18", resnet), ("resnet20", cifar)], tmp_path / "rf.png")
    assert path.stat().st_size > 0
    assert "81-pixel field" in coverage_line("resnet20", cifar, (32, 32))
    keras.backend.clear_session()
