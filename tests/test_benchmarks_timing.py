"""benchmarks/timing.py: the one timing method of the benchmarks and their shared report writers."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import timing  # noqa: E402


def test_interleaved_times_every_candidate_round_robin_after_warming_each():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    seconds = timing.interleaved(runs, repeats=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert {name: len(s) for name, s in seconds.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for s in seconds.values() for t in s)


def test_save_result_records_the_load_average_and_writes_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    result = {"rows": [1, 2]}
    timing.save_result(result, str(out))
    saved = json.loads(out.read_text())
    assert saved["rows"] == [1, 2] and len(saved["load_average_end"]) == 3
    assert "load average at the end:" in capsys.readouterr().out
    timing.save_result({"rows": []}, None)  # no path: printed only, nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_print_report_prints_and_writes_the_same_header_and_table(tmp_path, capsys):
    out = tmp_path / "report.md"
    timing.print_report("setup line", "| a |\n|---|", str(out))
    assert out.read_text() == "setup line\n\n| a |\n|---|\n"
    assert capsys.readouterr().out == "setup line\n\n| a |\n|---|\n"


def test_cpu_name_adds_family_and_model_to_tell_hosts_of_one_name_apart(tmp_path):
    info = tmp_path / "cpuinfo"
    block = "processor\t: {}\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n\n"
    info.write_text(block.format(0) + block.format(1).replace("26", "25"))
    assert timing.cpu_name(info) == f"AMD EPYC (family 26, model 2), {os.cpu_count()} cores"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\n")  # no family or model: the name alone
    assert timing.cpu_name(info) == f"Some CPU, {os.cpu_count()} cores"
    assert timing.cpu_name(tmp_path / "missing").endswith(f", {os.cpu_count()} cores")
