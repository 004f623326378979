"""The one timing method of the benchmarks, for every framework.

`run()` does the timed work (some training steps, some inference batches)
and returns only once it is finished (it reads a result back to the host),
so wall-clock time is the work's time on any device. After `warmup` untimed
calls (tracing, XLA compilation, thread pools, autotuning), each timing is
one call; the figure is the median over the repeats.

`interleaved` times several candidates round-robin (A, B, C, A, B, C, ...)
rather than one after the other: on a shared or thermally throttled machine
slow periods then hit every candidate alike, and the ratio of medians is
fairer than two separate runs.

`matmul_gflops` is the machine's reference rate: a large matrix product in
TensorFlow, at the precision of the model it is compared with, the fastest
of its repeats.
"""

import os
import platform
import statistics
import time


def timings(run, repeats, warmup=1):
    """Seconds of each of `repeats` calls of `run()`, after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds


def median_seconds(run, repeats, warmup=1):
    """Median seconds of one call of `run()` (see `timings`)."""
    return statistics.median(timings(run, repeats, warmup))


def interleaved(runs, repeats, warmup=1):
    """{name: [seconds, ...]} for a dict of `run()` callables timed round-robin.

    Every candidate is warmed up first; then each repeat times every
    candidate once, in the dict's order.
    """
    for run in runs.values():
        for _ in range(warmup):
            run()
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def matmul_gflops(n=4096, repeats=5, dtype="float32"):
    """GFLOP/s of an n x n by n x n matrix product in TensorFlow at `dtype` (2 n^3 FLOPs)."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), "float32")))
    # A peak is what the machine can do: the fastest of the repeats (noise only slows it down).
    return 2 * n**3 / min(timings(lambda: matmul().numpy(), repeats)) / 1e9


def cpu_name(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name, family and model (/proc/cpuinfo; Python's guess elsewhere) and its core count.

    The family and model numbers tell hosts apart whose virtual CPUs share one name: "AMD EPYC"
    is a Zen 3, Zen 4 or Zen 5 (family 25, model 1 or 17; family 26).
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open(cpuinfo) as f:
            fields = {}
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor's block is enough
                fields.setdefault(key.strip(), value.strip())
        if "model name" in fields:
            cpu = fields["model name"]
            if "cpu family" in fields and "model" in fields:
                cpu += f" (family {fields['cpu family']}, model {fields['model']})"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def save_result(result, json_path):
    """Record and print the load average at the end, then write `result` as JSON to `json_path` (if given).

    A load average near the core count at the end says something else ran
    beside the timings, which makes them suspect; the figure travels with them.
    """
    import json

    result["load_average_end"] = os.getloadavg()
    print(f"\nload average at the end: {result['load_average_end'][0]:.2f}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)


def print_report(header, table, markdown_path=None):
    """Print a run's header line and Markdown table, and write both to `markdown_path` (if given)."""
    print(header)
    print()
    print(table)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(header + "\n\n" + table + "\n")
