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
    # every timing has its window of machine counters and a reference after it
    assert len(report["machine"]) == len(report["reference_gflops"]) == 2
    assert all(g > 0 for g in report["reference_gflops"])
    for w in report["machine"]:
        assert w["wall_s"] > 0 and w["process_cpu_s"] > 0 and 0 < w["utilisation"] <= 1.05
        assert 0 <= w["steal_fraction"] <= 1 and 0 <= w["others_fraction"] <= 1


@pytest.mark.parametrize("pipeline", ["product", "autotuned"])
def test_a_child_can_time_whole_fit_calls_on_either_pipeline(capsys, monkeypatch, pipeline):
    monkeypatch.setenv(steady_speed.PIPELINE_VAR, pipeline)
    steady_speed.main(["--child", "--model", "alexnet_cifar", "--batch-size", "4", "--image-size", "16",
                       "--steps", "2", "--repeats", "2", "--timing", "fit-call"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["timing"], report["pipeline"]) == ("fit-call", pipeline)
    assert report["images_per_s"] > 0 and len(report["rates"]) == 2


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


def measured(rate, reference, utilisation=0.95):
    window = {"wall_s": 1.0, "process_cpu_s": 2 * utilisation, "utilisation": utilisation,
              "steal_fraction": 0.0, "others_fraction": 0.01}
    return {"images_per_s": rate, "load_at_start": 0.0, "reference_gflops": [reference] * 3, "machine": [window] * 3}


def test_the_reference_tells_a_slow_machine_from_a_slow_process(tmp_path, monkeypatch):
    # process 2 is slow with the machine (its reference as slow), process 3 slow of itself
    results = iter([measured(100.0, 200.0), measured(80.0, 160.0), measured(80.0, 200.0, utilisation=0.5)])
    monkeypatch.setattr(steady_speed, "run_child", lambda args, env: next(results))
    out_json, out_md = tmp_path / "s.json", tmp_path / "s.md"
    assert steady_speed.main(["--processes", "3", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    summary = json.loads(out_json.read_text())["variants"]["default"]["summary"]
    assert summary["spread"] == pytest.approx(1.25)
    assert summary["reference_spread"] == pytest.approx(1.25)
    assert summary["relative_spread"] == pytest.approx(1.25)  # 0.5 images/GFLOP twice, 0.4 for process 3
    table = out_md.read_text()
    assert "| default | as given | 80 | 80 | 100 | 1.25 (over 1.15) | 100 80 80 | 1.25 | 1.25 |" in table
    assert "| default | 2 | 80.0 | 160 | 0.500 | 95.0% | 0.0% | 1.0% |" in table
    assert "| default | 3 | 80.0 | 200 | 0.400 | 50.0% | 0.0% | 1.0% |" in table


@pytest.mark.parametrize("text", ["default:X=1", ":X=1", "a:X", "a:=1"])
def test_a_malformed_variant_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        steady_speed.parse_variant(text)
