"""benchmarks/small_map_conv.py: runs and reports both comparisons; timings are never asserted."""

import argparse
import json
import os
import sys

import keras
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import small_map_conv  # noqa: E402

from kerascnn.layers import Conv2D  # noqa: E402
from kerascnn.models import common, create_model  # noqa: E402


def test_builders_conv2d_swaps_the_builders_class_and_restores_it():
    with small_map_conv.builders_conv2d(keras.layers.Conv2D):
        model = create_model("vgg11_bn", num_classes=10, input_shape=(16, 16, 3))
    assert {type(layer) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)} == {keras.layers.Conv2D}
    assert common.CONV2D is Conv2D  # the builders' default again
    model = create_model("resnet18", num_classes=10, input_shape=(16, 16, 3))
    assert {type(layer) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)} == {Conv2D}


def test_reports_gradient_and_model_ratios(tmp_path):
    out = tmp_path / "conv.json"
    small_map_conv.main([
        "--batch-size", "2", "--image-size", "16", "--repeats", "1", "--steps", "1",
        "--precision", "float32", "mixed_bfloat16", "--shapes", "2x8x4", "4x4x8", "--models", "vgg11_bn",
        "--json", str(out),
    ])
    result = json.loads(out.read_text())
    assert [r["label"] for r in result["gradients"]] == [
        "2x8x4 float32", "4x4x8 float32", "2x8x4 bfloat16", "4x4x8 bfloat16"]
    float32, bfloat16 = result["gradients"][:2], result["gradients"][2:]
    assert all(r["relative_difference"] < 1e-5 for r in float32)  # the same gradient, to float32 rounding
    assert all(r["relative_difference"] < 3e-2 for r in bfloat16)
    assert [r["label"] for r in result["models"]] == ["vgg11_bn mixed_bfloat16"]  # float32: the same class
    for r in result["gradients"] + result["models"]:
        assert r["keras_ms"] > 0 and r["kerascnn_ms"] > 0 and r["keras_over_kerascnn"] > 0


def test_a_malformed_shape_is_refused():
    with pytest.raises(SystemExit):
        small_map_conv.main(["--shapes", "4x512", "--models"])


def test_each_map_limit_is_its_own_candidate_built_under_that_limit(monkeypatch):
    traced = []
    real = small_map_conv.conv2d.weight_gradient

    def spy(inputs, output_gradient, kernel_shape):
        traced.append((small_map_conv.conv2d.SMALL_MAP_PIXELS, int(inputs.shape[1]) * int(inputs.shape[2])))
        return real(inputs, output_gradient, kernel_shape)

    monkeypatch.setattr(small_map_conv.conv2d, "weight_gradient", spy)
    args = argparse.Namespace(
        batch_size=2, image_size=16, steps=1, map_limits=[0, 4, small_map_conv.conv2d.SMALL_MAP_PIXELS])
    runs = small_map_conv.model_candidates("vgg11_bn", "mixed_bfloat16", args)
    assert list(runs) == ["keras", "kerascnn_0px", "kerascnn_4px", "kerascnn"]
    # vgg11_bn at 16x16 has maps of 4 and 1 pixels in its last stages: each candidate traced the
    # matrix-product gradient for exactly the maps its own limit admits, and the limit was restored.
    assert {limit for limit, _ in traced} == {4, small_map_conv.conv2d.SMALL_MAP_PIXELS}
    assert all(pixels <= limit for limit, pixels in traced)
    assert small_map_conv.conv2d.SMALL_MAP_PIXELS == 16
    row = small_map_conv.summarise("x", {name: [0.2, 0.1] for name in runs}, 1, 2)
    assert row["keras_over_kerascnn_4px"] == 1.0 and "keras_over_keras" not in row
