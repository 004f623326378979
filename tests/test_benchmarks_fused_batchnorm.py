"""benchmarks/fused_batchnorm.py: runs and reports every comparison; timings are never asserted."""

import json
import os
import sys

import keras

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import fused_batchnorm  # noqa: E402

from kerascnn.layers import BatchNormalization  # noqa: E402
from kerascnn.models import common, create_model  # noqa: E402


def test_builders_batch_norm_swaps_every_builders_class_and_restores_it():
    with fused_batchnorm.builders_batch_norm(keras.layers.BatchNormalization):
        model = create_model("resnet18", num_classes=10, input_shape=(16, 16, 3))
    classes = {type(layer) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert classes == {keras.layers.BatchNormalization}
    assert common.BATCH_NORM is BatchNormalization  # the builders' default again


def test_reports_stack_layer_and_model_ratios(tmp_path):
    out = tmp_path / "bn.json"
    fused_batchnorm.main([
        "--batch-size", "4", "--image-size", "8", "--blocks", "1", "--repeats", "1", "--steps", "1",
        "--precision", "float32", "mixed_bfloat16", "--models", "vgg11_bn", "--json", str(out),
    ])
    result = json.loads(out.read_text())
    assert result["bfloat16_kernel"].startswith("yes")
    for part in ("step", "layer", "models"):
        rows = result[part]
        assert len(rows) == 4 and {r["batch_norm"] for r in rows} == {"keras", "fused"}
        assert all(r["median_step_s"] > 0 and r["keras_over_fused"] > 0 for r in rows)
