"""benchmarks/steady_speed.py: a real measurement in-process, the spread over processes, the variants.

Timings are never asserted: only that a child measures and reports, and that
the parent alternates the variants and computes the spread of what they report.
"""

import argparse
import json
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)

import steady_speed  # noqa: E402


def test_a_child_trains_and_reports_its_speed_and_runtime(capsys):
    from kerascnn.runtime import hardware

    steady_speed.main(["--child", "--model", "alexnet_cifar", "--batch-size", "4", "--image-size", "16",
                       "--steps", "1", "--repeats", "2", "--precision", "auto"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images_per_s"] > 0 and len(report["rates"]) == 2
    # `auto` is what `fit` picks here (mixed_bfloat16 on a CPU with bfloat16 units, else float32)
    assert report["precision"] == hardware.auto_precision(hardware.describe())[0] != "auto"
    assert report["affinity"] == sorted(os.sched_getaffinity(0))
    assert {"intra_op_threads", "inter_op_threads", "env", "load_at_start"} <= set(report)


def test_variants_alternate_and_the_spread_is_max_over_min(tmp_path, monkeypatch):
    speeds = iter([100.0, 50.0, 110.0, 60.0, 105.0, 90.0])
    calls = []

    def fake_child(args, env):
        calls.append(dict(env))
        return {"images_per_s": next(speeds), "load_at_start": 0.0}

    monkeypatch.setattr(steady_speed, "run_child", fake_child)
    out_json, out_md = tmp_path / "s.json", tmp_path / "s.md"
    assert steady_speed.main(["--processes", "3", "--variant", "one:TF_NUM_INTRAOP_THREADS=1,OMP_NUM_THREADS=1",
                              "--json", str(out_json), "--markdown", str(out_md)]) == 0
    one = {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    assert calls == [{}, one, {}, one, {}, one]
    report = json.loads(out_json.read_text())
    default, variant = report["variants"]["default"]["summary"], report["variants"]["one"]["summary"]
    assert default["spread"] == pytest.approx(1.1) and default["meets_target"]
    assert variant["spread"] == pytest.approx(1.8) and not variant["meets_target"]
    table = out_md.read_text()
    assert "| default | as given | 100 | 105 | 110 | 1.10 |" in table
    assert "| one | TF_NUM_INTRAOP_THREADS=1, OMP_NUM_THREADS=1 | 50 | 60 | 90 | 1.80 (over 1.15) |" in table


@pytest.mark.parametrize("text", ["default:X=1", ":X=1", "a:X", "a:=1"])
def test_a_malformed_variant_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        steady_speed.parse_variant(text)
