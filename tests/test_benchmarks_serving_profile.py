"""benchmarks/serving_profile.py: two real exports, an op profile without batch norm, the dense floor."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import serving_profile  # noqa: E402


def test_a_tiny_profile_times_both_exports_and_finds_no_batch_norm_in_the_folded_one(tmp_path):
    report = serving_profile.main(["alexnet_cifar", "--set", "width_multiplier=0.125", "--set", "fc_units=16",
                                   "--calls", "5", "--rounds", "2", "--profile-calls", "3",
                                   "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    assert report["folded"] == 7  # five convolutions and fc6, fc7
    assert set(report["p50_ms"]) == {"folded", "unfolded"}
    assert all(len(v) == 2 and all(ms > 0 for ms in v) for v in report["p50_ms"].values())
    ops = report["op_ms_per_call"]
    assert any("MatMul" in op for op in ops) and any("Conv2D" in op for op in ops)
    assert not any("BatchNorm" in op for op in ops), ops  # the product's signature computes without them
    assert [name for name, _ in report["dense_kernels_mb"]] == ["fc6", "fc7", "predictions"]
    assert report["dense_floor_ms"] >= 0
    assert json.loads((tmp_path / "r.json").read_text())["folded"] == 7
    assert "| folded |" in (tmp_path / "r.md").read_text()
