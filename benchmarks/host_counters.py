"""What the machine did while a timing ran: CPU stolen by the hypervisor, taken by other processes, used by this one.

A slow timing has three kinds of cause, and the kernel counts each:

- **steal**: a virtual machine's vCPU was ready to run but the hypervisor ran
  something else (/proc/stat's 8th "cpu" field, Linux >= 2.6.11). No setting
  inside the guest changes it.
- **other processes** on the same machine: CPU time the whole machine spent
  busy (user + nice + system + irq + softirq) minus what this process spent.
- **this process idle**: its own CPU time (getrusage, all threads, user +
  system) over wall time x the CPUs it may run on. A training step that keeps
  both cores busy is near 1; "as if one of the two cores sat idle" (issue 19)
  would show as about 0.5 with no steal and no other process.

For a window of `wall` seconds, this process allowed `n` CPUs
(`os.sched_getaffinity`) of the machine's `m` (`os.cpu_count`), with `d(...)`
the change of a /proc/stat counter in clock ticks (SC_CLK_TCK a second):

    steal_fraction   = d(steal) / d(every field)
    others_fraction  = (d(busy) / ticks_per_s - process_cpu_s) / (wall x m)
    utilisation      = process_cpu_s / (wall x n)

Fractions of the machine's capacity over the window; counters the kernel
does not expose (another OS, a container hiding /proc) give None, never a
guess. Reading them costs microseconds, so every timing gets its own window.
"""

import os
import resource
import time

# /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal [guest guest_nice],
# guest time already counted inside user and nice (so not added again).
FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
BUSY = ("user", "nice", "system", "irq", "softirq")


def parse_proc_stat(text):
    """{field: ticks} of the aggregate "cpu" line of /proc/stat's text; None without one."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [int(v) for v in parts[1:1 + len(FIELDS)]]
            values += [0] * (len(FIELDS) - len(values))  # kernels before steal was counted
            return dict(zip(FIELDS, values))
    return None


def read_cpu_ticks(path="/proc/stat"):
    """The machine's CPU counters now (`parse_proc_stat`), or None where the file cannot be read."""
    try:
        with open(path) as f:
            return parse_proc_stat(f.read())
    except OSError:
        return None


def snapshot(read_ticks=read_cpu_ticks):
    """(wall seconds, this process's CPU seconds, the machine's counters) now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime + usage.ru_stime, read_ticks()


def window(before, after, cpus=None, machine_cpus=None, ticks_per_s=None):
    """The fractions above for the time between two `snapshot`s."""
    cpus = cpus or len(os.sched_getaffinity(0))
    machine_cpus = machine_cpus or os.cpu_count()
    ticks_per_s = ticks_per_s or os.sysconf("SC_CLK_TCK")
    (wall0, cpu0, ticks0), (wall1, cpu1, ticks1) = before, after
    wall, process_cpu = wall1 - wall0, cpu1 - cpu0
    result = {"wall_s": wall, "process_cpu_s": process_cpu,
              "utilisation": process_cpu / (wall * cpus) if wall > 0 else None,
              "steal_fraction": None, "others_fraction": None}
    if ticks0 is not None and ticks1 is not None and wall > 0:
        delta = {k: ticks1[k] - ticks0[k] for k in FIELDS}
        total = sum(delta.values())
        result["steal_fraction"] = delta["steal"] / total if total > 0 else 0.0
        busy_s = sum(delta[k] for k in BUSY) / ticks_per_s
        # Tick counting is coarse (10 ms a tick): clipped at 0 so rounding never reads as negative load.
        result["others_fraction"] = max(0.0, busy_s - process_cpu) / (wall * machine_cpus)
    return result
