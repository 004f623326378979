"""benchmarks/vs_torch.py and serving_latency.py (issue 19): PyTorch's modes, the same weights, well-formed reports.

Timings are never asserted: only that the scripts run and report every figure,
and that the two frameworks compute the same function from the same weights.
"""

import json
import os
import sys

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)

# PyTorch is a test dependency (pyproject [test]): a missing one fails here, never skips.
import torch  # noqa: E402

import serving_latency  # noqa: E402
import torch_reference  # noqa: E402
import vs_torch  # noqa: E402

from kerascnn.models import create_model  # noqa: E402


@pytest.mark.parametrize("name", ["googlenet_cifar", "alexnet_cifar", "resnet18", "resnet20"])
def test_same_weights_give_the_same_logits(name):
    keras_model = create_model(name, num_classes=10, input_shape=(32, 32, 3), **torch_reference.KERASCNN_OPTIONS[name])
    reference = torch_reference.create(name).eval()
    torch_reference.randomize_statistics(reference)
    copied = torch_reference.copy_to_keras(name, reference, keras_model)
    assert copied == len(keras_model.weights)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    got = keras_model(x, training=False).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


def test_modes_and_optimizers_follow_keras():
    assert torch_reference.parse_mode("float32") == frozenset()
    assert torch_reference.parse_mode("compile+channels_last+bf16") == {"compile", "channels_last", "bf16"}
    for bad in ("float16", "bf16+float32", ""):
        with pytest.raises(ValueError, match="Received: mode="):
            torch_reference.parse_mode(bad)
    model = torch_reference.create("resnet18")
    adam = torch_reference.make_optimizer(model, "adam")
    assert adam.defaults["lr"] == 1e-3 and adam.defaults["eps"] == 1e-7
    rmsprop = torch_reference.make_optimizer(model, "rmsprop", lr=1e-4, weight_decay=0.0)
    assert rmsprop.defaults["alpha"] == 0.9 and rmsprop.defaults["momentum"] == 0
    assert [g["weight_decay"] for g in rmsprop.param_groups] == [0.0, 0.0]
    decayed, rest = torch_reference.make_optimizer(model, "sgd").param_groups
    assert decayed["weight_decay"] == 5e-4 and rest["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in rest["params"])


def test_a_mode_that_fails_is_reported_unavailable(monkeypatch):
    trainer = torch_reference.Trainer("resnet18", 2, 0, image_size=8, mode="channels_last+bf16")
    assert trainer.warm_up(1) is None and trainer.x.is_contiguous(memory_format=torch.channels_last)

    def broken(steps):
        raise RuntimeError("backend='inductor' raised:\nCppCompileError: C++ compile error")

    monkeypatch.setattr(trainer, "train_steps", broken)
    assert trainer.warm_up() == "unavailable: RuntimeError: backend='inductor' raised:"


def test_seeds_setup_mirrors_the_grid():
    config = vs_torch.Config.parse("alexnet_cifar:adam:32:seeds")
    options, optim = config.keras_settings()
    assert options == {"batch_norm": True, "dropout": 0.0}
    assert (optim.optimizer, optim.lr, optim.weight_decay, optim.schedule) == ("adam", 1e-3, 0.0, "constant")
    assert config.torch_settings() == {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
                                       "model_options": {"dropout": 0.0}}
    assert vs_torch.Config.parse("vgg16_bn:sgd:128").keras_settings()[1].weight_decay == 5e-4
    assert len(vs_torch.DEFAULT_CONFIGS) == 12


def test_quick_training_comparison_writes_the_promised_fields(tmp_path, capsys):
    out = tmp_path / "vs_torch.json"
    # One PyTorch thread: two would crawl while other tests share the CPUs (OpenMP's barriers).
    rows = vs_torch.main(["resnet18:rmsprop:2", "--quick", "--image-size", "8", "--torch-modes", "channels_last",
                          "--torch-threads", "1", "--peak", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["targets"] == {"default_vs_pytorch_fastest": 1.3, "float32_vs_pytorch_float32": 1.0}
    (row,) = result["rows"]
    assert row == json.loads(json.dumps(rows[0]))
    precision = row["kerascnn_precision"]
    assert set(row["images_per_s"]) == {f"kerascnn {precision}", "kerascnn float32", "pytorch float32",
                                        "pytorch channels_last"}
    assert row["pytorch_fastest_mode"] in ("float32", "channels_last") and row["unavailable"] == {}
    assert row["default_vs_pytorch_fastest"] == pytest.approx(
        row["kerascnn_default_images_per_s"] / row["pytorch_fastest_images_per_s"])
    assert row["float32_vs_pytorch_float32"] == pytest.approx(
        row["kerascnn_float32_images_per_s"] / row["pytorch_float32_images_per_s"])
    assert all(len(s) == 2 for s in row["seconds"].values())  # --quick: two timings
    printed = capsys.readouterr().out
    assert "| resnet18 | rmsprop | 2 | fit |" in printed and "| resnet18:rmsprop:2:fit |" in printed
    # --peak: the shares of the measured peak, from the model's own forward FLOPs at 8x8
    assert row["peak_gflops"] > 0 and 0 < row["forward_gflops_per_image"] < 0.6
    assert row["ceiling_vs_pytorch_fastest"] == pytest.approx(
        row["peak_gflops"] / (3 * row["forward_gflops_per_image"] * row["pytorch_fastest_images_per_s"]))
    assert "matrix-product peak" in printed and "| ceiling over PyTorch fastest |" in printed


def test_against_peak_counts_a_training_step_as_three_forward_passes():
    row = {"forward_gflops_per_image": 0.5, "kerascnn_default_images_per_s": 120.0,
           "pytorch_fastest_images_per_s": 100.0}
    vs_torch.against_peak(row, peak_gflops=300.0)
    assert row["kerascnn_default_fraction_of_peak"] == pytest.approx(1.5 * 120 / 300)
    assert row["pytorch_fastest_fraction_of_peak"] == pytest.approx(1.5 * 100 / 300)
    assert row["ceiling_vs_pytorch_fastest"] == pytest.approx(2.0)  # 300 GFLOP/s over PyTorch's 150
    no_torch = vs_torch.against_peak({**row, "pytorch_fastest_images_per_s": None}, 300.0)
    assert no_torch["ceiling_vs_pytorch_fastest"] is None and no_torch["pytorch_fastest_fraction_of_peak"] is None


def test_quick_serving_comparison_uses_the_same_weights(tmp_path, capsys):
    out = tmp_path / "serving.json"
    serving_latency.main(["resnet18", "--quick", "--precision", "float32", "--image-size", "8", "--calls", "5",
                          "--batch", "4", "--warmup-calls", "1", "--torch-modes", "float32", "--torch-threads", "1",
                          "--int8", "--export-dir", str(tmp_path / "e"), "--json", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["figures"]) == {"kerascnn float32", "pytorch float32", "kerascnn tflite int8", "pytorch int8"}
    for figures in row["figures"].values():
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["batch_images_per_s"] > 0
        assert len(figures["rounds"]) == 2
    assert row["same_weights"]["logits_max_rel_diff_float32"] < 1e-4
    assert row["same_weights"]["float32"]["top1_agreement"] == 1.0
    assert row["p50_vs_pytorch_best"] == pytest.approx(
        row["figures"]["kerascnn float32"]["p50_ms"] / row["figures"]["pytorch float32"]["p50_ms"])
    assert row["ratios"]["float32"]["p50_vs_pytorch_best"] == row["p50_vs_pytorch_best"]
    # int8 on both sides, compared with each other; PyTorch's best float mode stays a float one.
    assert row["pytorch_best_latency_mode"] == "float32" and not row["unavailable"]
    int8 = row["int8"]
    assert int8["p50_vs_pytorch_int8"] == pytest.approx(
        row["figures"]["kerascnn tflite int8"]["p50_ms"] / row["figures"]["pytorch int8"]["p50_ms"])
    assert int8["p50_vs_pytorch_best_float"] == pytest.approx(
        row["figures"]["kerascnn tflite int8"]["p50_ms"] / row["figures"]["pytorch float32"]["p50_ms"])
    # Quantization rounds: the int8 logits are near the float ones, not equal to them.
    assert 0 < row["same_weights"]["int8"]["logits_max_rel_diff"] < 0.5
    assert 0 <= int8["tflite_top1_agreement_with_float32"] <= 1 and int8["tflite_bytes"] > 0
    # The product's export, one folder per precision.
    assert (tmp_path / "e" / "exports" / "float32" / "resnet18" / "1" / "saved_model.pb").is_file()
    printed = capsys.readouterr().out
    assert "| resnet18 | pytorch float32 |" in printed and "| resnet18 | kerascnn tflite int8 |" in printed
    assert "| model | tflite int8 p50 / PyTorch int8 |" in printed


def test_both_frameworks_serve_the_same_weights_in_bfloat16(tmp_path):
    """kerascnn's bfloat16 export and PyTorch's bf16_weights mode: the same function as float32, rounded."""
    import tensorflow as tf
    import torch_serving

    reference, state_dict = serving_latency.reference_weights("resnet18", tmp_path)
    label = serving_latency.export_label("float32", "bfloat16")
    assert label == "float32 served in bfloat16" and serving_latency.label_parts(label) == ("float32", "bfloat16")
    version, _, _ = serving_latency.export_same_weights("resnet18", reference, label, 8, tmp_path)
    assert json.loads((version / "kerascnn.json").read_text())["serving_dtype"] == "bfloat16"
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    served = {mode: torch_serving.Predictor("resnet18", state_dict, tmp_path / "images.npy", serving_latency.MEAN,
                                            serving_latency.STD, mode, threads=1)
              for mode in ("float32", "channels_last+bf16_weights")}
    assert {p.dtype for p in served["channels_last+bf16_weights"].model.parameters()} == {torch.bfloat16}
    want = served["float32"].predict(torch.from_numpy(images))
    theirs = served["channels_last+bf16_weights"].predict(torch.from_numpy(images))
    ours = tf.saved_model.load(str(version)).signatures["serve"](images=tf.constant(images))["probabilities"].numpy()
    for got in (theirs, ours):
        assert got.dtype == np.float32 and not np.allclose(got, want, atol=1e-6, rtol=0)
        np.testing.assert_allclose(got, want, atol=0.05)


@pytest.mark.parametrize("mode, ok", [
    ("bf16_weights", True), ("compile+channels_last+bf16_weights", True), ("float32", True), ("int8", True),
    ("bf16+bf16_weights", False), ("fp8_weights", False),
])
def test_serving_modes_add_bfloat16_weights_to_the_training_modes(mode, ok):
    import argparse

    import torch_serving

    assert set(torch_reference.MODES) < set(torch_serving.SERVING_MODES)
    if ok:
        assert torch_serving.serving_mode_flag(mode) == mode
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            torch_serving.serving_mode_flag(mode)
