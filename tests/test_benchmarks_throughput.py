"""benchmarks/throughput.py and the PyTorch reference: a well-formed table, equal architectures.

Timings are never asserted: only that the script runs and reports every figure.
"""

import json
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)

# PyTorch is a test dependency (pyproject [test]): a missing one fails here, never skips.
import torch  # noqa: E402,F401

import throughput  # noqa: E402
import torch_reference  # noqa: E402

from kerascnn.models import create_model  # noqa: E402

ROW_KEYS = {
    "model", "framework", "precision", "jit", "train_images_per_s", "infer_images_per_s",
    "forward_gflops_per_image", "train_fraction_of_peak", "infer_fraction_of_peak",
}


@pytest.mark.parametrize("name", sorted(torch_reference.MODELS))
def test_torch_reference_has_kerascnn_parameter_count(name):
    keras_model = create_model(name, num_classes=10, input_shape=(32, 32, 3), **throughput.MODEL_OPTIONS.get(name, {}))
    trainable = sum(int(w.numpy().size) for w in keras_model.trainable_weights)
    assert torch_reference.param_count(torch_reference.create(name)) == trainable


def test_torch_reference_trains_and_infers():
    trainer = torch_reference.Trainer("resnet18", batch_size=2, infer_batch_size=3)
    assert trainer.train_steps(1) > 0
    assert trainer.infer(1).shape == (3, 10)


def test_torch_worker_runs_the_reference_in_its_own_process():
    worker = torch_reference.Worker("resnet18", batch_size=2, infer_batch_size=3)
    try:
        assert worker.params == torch_reference.param_count(torch_reference.create("resnet18"))
        assert worker.num_threads >= 1 and worker.version
        assert worker.train_steps(1) > 0
        assert worker.infer(1) == (3, 10)
    finally:
        worker.close()
    assert worker._process.returncode == 0


def test_torch_reference_alone_reports_its_rates(capsys):
    rates = torch_reference.time_alone(["resnet18"], repeats=1, batch_size=2, infer_batch_size=2)
    train, infer = rates["resnet18"]
    assert train > 0 and infer > 0
    assert "resnet18: train" in capsys.readouterr().out


def test_quick_run_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    throughput.main(
        ["resnet20", "--quick", "--precision", "float32", "mixed_bfloat16", "--jit", "off", "--json", str(out)]
    )
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| resnet20 ")]
    assert len(table) == 2 and all(line.count("|") == 12 for line in table)
    assert "peak" in printed and "3 x forward" in printed
    result = json.loads(out.read_text())
    assert set(result["peaks_gflops"]) == {"float32", "bfloat16"} and min(result["peaks_gflops"].values()) > 0
    rows = result["rows"]
    assert [(r["precision"], r["jit"]) for r in rows] == [("float32", False), ("mixed_bfloat16", False)]
    for row in rows:
        assert set(row) >= ROW_KEYS
        assert row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0
        assert row["forward_gflops_per_image"] == pytest.approx(rows[0]["forward_gflops_per_image"])
        assert len(row["train_seconds"]) == 2  # --quick: two timings


def test_quick_run_with_torch_reports_ratios(tmp_path, capsys):
    rows = throughput.main(["resnet18", "--quick", "--torch", "--image-size", "16", "--json", str(tmp_path / "t.json")])
    assert [r["framework"] for r in rows] == ["kerascnn", "pytorch"]
    keras_row, torch_row = rows
    assert keras_row["train_vs_pytorch"] == pytest.approx(
        keras_row["train_images_per_s"] / torch_row["train_images_per_s"]
    )
    assert "infer_vs_pytorch" in keras_row and "train_vs_pytorch" not in torch_row
    assert torch_row["train_ceiling_vs_pytorch"] == pytest.approx(1 / torch_row["train_fraction_of_peak"])
    printed = capsys.readouterr().out
    assert "| resnet18 | pytorch | float32 |" in printed and "in its own process" in printed
    torch_line = next(line for line in printed.splitlines() if line.startswith("| resnet18 | pytorch "))
    assert f"(<= {torch_row['train_ceiling_vs_pytorch']:.2f}x)" in torch_line
