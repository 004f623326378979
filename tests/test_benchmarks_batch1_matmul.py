"""benchmarks/batch1_matmul.py: batch-1 products timed per call, bandwidth from the weight bytes."""

import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import batch1_matmul as bench  # noqa: E402  (benchmarks/batch1_matmul.py)


def test_each_call_is_timed_after_the_warm_up():
    seconds = bench.time_products(tf.bfloat16, size=8, calls=3, warmup=1)
    assert seconds.shape == (3,) and np.all(seconds > 0)


def test_int8_is_keras_quantized_dense_close_to_the_float_product():
    model = bench.two_dense_layers(size=64)
    x = tf.random.normal([1, 64], seed=0)
    exact = model(x).numpy()
    assert bench.quantize_int8(model) is model
    dense = [layer for layer in model.layers if layer.name.startswith("dense")]
    assert [layer.quantization_mode for layer in dense] == ["int8", "int8"]
    assert all(layer._kernel.dtype == "int8" for layer in dense)
    approximate = model(x).numpy()
    # int8 weights and inputs: about 1% of the output's scale, far from a wrong product
    assert np.abs(approximate - exact).max() < 0.05 * np.abs(exact).max()


def test_int8_calls_are_timed():
    seconds = bench.time_products(tf.int8, size=8, calls=2, warmup=1)
    assert seconds.shape == (2,) and np.all(seconds > 0)


def test_bandwidth_counts_both_matrices_at_the_dtype_s_width(monkeypatch):
    monkeypatch.setattr(bench, "time_products", lambda dtype, size, calls, warmup, bias: np.array([0.002, 0.001, 0.004]))
    float32 = bench.measure(tf.float32, size=1000, calls=3)
    bfloat16 = bench.measure(tf.bfloat16, size=1000, calls=3)
    assert float32["p50_ms"] == bfloat16["p50_ms"] == 2.0
    assert float32["weights_gb_per_s"] == 2 * 1000 * 1000 * 4 / 0.002 / 1e9  # 4.0 GB/s
    assert bfloat16["weights_gb_per_s"] == float32["weights_gb_per_s"] / 2


def test_main_prints_one_line_per_product(capsys):
    bench.main(["--size", "8", "--calls", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["float32", "float32 + bias", "bfloat16", "bfloat16 + bias", "int8"]


def test_a_product_with_its_bias_is_what_a_dense_layer_computes():
    seconds = bench.time_products(tf.bfloat16, size=8, calls=2, warmup=1, bias=True)
    assert seconds.shape == (2,) and np.all(seconds > 0)
