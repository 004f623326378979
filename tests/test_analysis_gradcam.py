"""Grad-CAM (Selvaraju et al. 2017) against its formula on a network small enough to work by hand."""

import keras
import numpy as np
import pytest

from kerascnn.analysis.gradcam import grad_cam, target_layer, upsample


def cam_network(kernel, dense):
    """conv (ReLU) -> global average pooling -> dense logits: Grad-CAM is then CAM, L = ReLU(sum_k w_kc A^k) / Z."""
    inputs = keras.Input((4, 4, 1))
    features = keras.layers.Conv2D(kernel.shape[-1], 1, activation="relu", use_bias=False, name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    logits = keras.layers.Dense(dense.shape[-1], use_bias=False, name="logits")(pooled)
    model = keras.Model(inputs, logits)
    model.get_layer("features").set_weights([kernel.reshape(1, 1, 1, -1)])
    model.get_layer("logits").set_weights([dense])
    return model


def test_grad_cam_is_the_gradient_weighted_relu_map_of_equations_1_and_2():
    rng = np.random.default_rng(0)
    kernel = np.array([1.0, -1.0, 0.5], np.float32)
    dense = rng.normal(size=(3, 2)).astype(np.float32)
    model = cam_network(kernel, dense)
    images = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
    assert target_layer(model) == "features"  # the last map larger than 1x1, not the pooling

    maps, logits, classes = grad_cam(model, images, classes=[0, 1])
    features = np.maximum(images * kernel, 0.0)  # A^k, [N, 4, 4, 3]
    for i, c in enumerate((0, 1)):
        alpha = dense[:, c] / 16.0  # (1): d y^c / d A^k_ij = w_kc / Z, averaged over the Z = 16 positions
        expected = np.maximum((features[i] * alpha).sum(axis=-1), 0.0)  # (2)
        np.testing.assert_allclose(maps[i], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, features.mean(axis=(1, 2)) @ dense, rtol=1e-5)

    predicted_maps, _, predicted = grad_cam(model, images)  # default: the predicted class
    assert list(predicted) == list(np.argmax(logits, axis=-1))
    shown = upsample(predicted_maps, (8, 8))
    assert shown.shape == (2, 8, 8) and shown.min() >= 0.0
    assert all(m.max() == pytest.approx(1.0) or m.max() == 0.0 for m in shown)
