import keras

from kerascnn.analysis.macs import forward_macs
from kerascnn.models import create_model


def test_hand_counted_small_network():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(6, 3, padding="same")(inputs)          # 8*8*6 * 3*3*4 = 13,824
    x = keras.layers.Conv2D(6, 3, groups=2, strides=2, padding="same")(x)  # 4*4*6 * 3*3*3 = 2,592
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)                                       # 96*5 = 480
    assert forward_macs(keras.Model(inputs, x)) == 13_824 + 2_592 + 480


def test_alexnet_v2_conv1_at_227_is_the_lecture_figure():
    # The lecture table: conv1 of AlexNet at 227x227 is 64x56x56 with 72,855,552 MACs.
    model = create_model("alexnet_v2", input_shape=(227, 227, 3), include_top=False)
    conv1 = keras.Model(model.input, model.get_layer("conv1").output)
    assert conv1.output_shape[1:] == (56, 56, 64)
    assert forward_macs(conv1) == 72_855_552
