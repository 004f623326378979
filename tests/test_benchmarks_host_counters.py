"""benchmarks/host_counters.py: /proc/stat parsed, and the fractions of a window computed from two snapshots."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import host_counters  # noqa: E402

PROC_STAT = """cpu  1000 10 300 5000 20 5 7 40 0 0
cpu0 500 5 150 2500 10 2 3 20 0 0
cpu1 500 5 150 2500 10 3 4 20 0 0
intr 12345
"""


def test_the_aggregate_cpu_line_is_read_field_by_field():
    ticks = host_counters.parse_proc_stat(PROC_STAT)
    assert ticks == {"user": 1000, "nice": 10, "system": 300, "idle": 5000, "iowait": 20, "irq": 5,
                     "softirq": 7, "steal": 40}
    assert host_counters.parse_proc_stat("cpu  1 2 3 4\n")["steal"] == 0  # an old kernel without the field
    assert host_counters.parse_proc_stat("intr 1\n") is None


def test_a_window_splits_the_machine_into_this_process_others_and_steal():
    before = (10.0, 5.0, host_counters.parse_proc_stat(PROC_STAT))
    # 2 s on 2 CPUs at 100 ticks/s = 400 ticks: 300 busy (user 250, system 50), 60 stolen, 40 idle
    after_ticks = dict(before[2], user=1250, system=350, steal=100, idle=5040)
    after = (12.0, 7.0, after_ticks)  # this process: 2.0 CPU seconds
    w = host_counters.window(before, after, cpus=2, machine_cpus=2, ticks_per_s=100)
    assert w["wall_s"] == pytest.approx(2.0) and w["process_cpu_s"] == pytest.approx(2.0)
    assert w["utilisation"] == pytest.approx(0.5)
    assert w["steal_fraction"] == pytest.approx(60 / 400)
    assert w["others_fraction"] == pytest.approx((3.0 - 2.0) / 4.0)


def test_unreadable_counters_give_none_not_a_guess():
    w = host_counters.window((0.0, 0.0, None), (1.0, 0.5, None), cpus=1, machine_cpus=1, ticks_per_s=100)
    assert w["utilisation"] == pytest.approx(0.5)
    assert w["steal_fraction"] is None and w["others_fraction"] is None
    assert host_counters.read_cpu_ticks("/nonexistent/stat") is None


def test_a_real_snapshot_pair_measures_this_process():
    before = host_counters.snapshot()
    sum(i * i for i in range(200_000))
    w = host_counters.window(before, host_counters.snapshot())
    assert w["wall_s"] > 0 and w["process_cpu_s"] >= 0
    if os.path.exists("/proc/stat"):
        assert 0 <= w["steal_fraction"] <= 1
