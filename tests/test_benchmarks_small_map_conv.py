"""benchmarks/small_map_conv.py: runs and reports both comparisons; timings are never asserted."""

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
