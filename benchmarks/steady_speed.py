"""Steady speed: the same training step in N fresh processes, and the spread of their speeds (issue 19).

    python benchmarks/steady_speed.py [--processes 10] [--model alexnet_cifar] [--optimizer adam]
        [--batch-size 128] [--precision float32] [--variant NAME:VAR=VALUE,VAR=VALUE ...]
        [--json OUT] [--markdown OUT]

Issue 19 saw one unchanged script train at 94 images/s in some processes
and 150-196 in others (float32, alexnet_cifar with batch norm and Adam,
batch 128): "as if one of the two cores sat idle". A difference between
processes is invisible inside one process, so this script starts each
measurement as a fresh child process (`--child`), which builds the model
as `fit` does (`throughput.keras_candidate`), warms up, and times
`--repeats` rounds of `--steps` training steps on one batch in memory.

Each child also reports what could make two processes differ: the CPUs it
may run on (`os.sched_getaffinity`), TensorFlow's intra- and inter-op
thread counts, the oneDNN and OpenMP variables it saw, and the machine's
load average when it started. And for every timing, what the machine did
meanwhile (`host_counters`): the share of CPU the hypervisor stole, the
share other processes took, how busy this process kept its CPUs; and after
it, a fixed reference (`REFERENCE_N` float32 matrix products, GFLOP/s) that
measures the machine's speed at that moment. A slow process whose
reference is as slow was a slow machine; one whose reference is not, with
its CPUs busy and nothing stolen, was slow of itself (a thread layout, a
memory placement) and is what the product's runtime setup could fix. The
spread of speed over reference is reported beside the spread of speed.

`--timing fit-call` times whole `model.fit` calls of `--steps` steps instead
of the training step (the issue's own method), on a pipeline of the
product's shape finished as the product finishes it (tf.data's autotuning
off); a child given `STEADY_SPEED_PIPELINE=autotuned` leaves autotuning on,
as TensorFlow does by default, so `--variant autotuned:STEADY_SPEED_PIPELINE=autotuned`
compares the two: an autotuned iterator's deletion often waits for the
tuner's next wake-up, idle (benchmarks/NOTES.md, 79).

`--variant NAME:VAR=VALUE,...` adds a runtime setup to compare (environment
variables given to the child, e.g. `pinned:TF_NUM_INTRAOP_THREADS=2`);
the variants' processes alternate (A, B, A, B, ...), so a slow period of
the machine hits each alike. The baseline variant `default` is the child
with the environment as given. Per variant: the median images/s of each
process, their min, median and max, and the spread max/min (issue 19's
target: under 1.15).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from host_counters import snapshot, window  # noqa: E402  (TensorFlow-free)
from timing import cpu_name  # noqa: E402  (TensorFlow-free)
ENV_REPORTED = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS",
                "ONEDNN_DEFAULT_FPMATH_MODE", "KMP_AFFINITY", "KMP_BLOCKTIME", "OMP_PROC_BIND")
TARGET_SPREAD = 1.15
# The reference after each timing: 8 products of 1024 x 1024 float32 matrices (17 GFLOP, about 0.1-0.3 s
# on two cores), small enough to leave the timings' share of the run unchanged, long enough for 10 ms ticks.
REFERENCE_N, REFERENCE_PRODUCTS = 1024, 8
PIPELINE_VAR = "STEADY_SPEED_PIPELINE"  # `autotuned`: `--timing fit-call` on TensorFlow's default pipeline


def parse_variant(text):
    """`NAME:VAR=VALUE,VAR=VALUE` -> (name, {VAR: VALUE})."""
    name, _, assignments = text.partition(":")
    env = {}
    for pair in filter(None, assignments.split(",")):
        var, sep, value = pair.partition("=")
        if not sep or not var:
            raise argparse.ArgumentTypeError(f"expected NAME:VAR=VALUE[,VAR=VALUE], got {text!r}")
        env[var] = value
    if not name or name == "default":
        raise argparse.ArgumentTypeError(f"a variant needs a name other than 'default': {text!r}")
    return name, env


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=10, help="fresh processes per variant")
    p.add_argument("--model", default="alexnet_cifar")
    p.add_argument("--optimizer", default="adam", choices=("adam", "rmsprop", "sgd"))
    p.add_argument("--setup", default="seeds", choices=("seeds", "fit"),
                   help="seeds: batch norm, no dropout, no decay, constant rate (issue 19's run); fit: fit's defaults")
    p.add_argument("--timing", default="step", choices=("step", "fit-call"),
                   help="step: the training step as fit's epoch loop calls it; fit-call: whole model.fit calls")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--precision", default="float32",
                   help="float32, mixed_bfloat16, mixed_float16, or auto (what `fit` picks on this machine)")
    # 7 timings of 10 steps (about 11 s each here): single timings of 5 steps scattered by up to
    # 1.4x inside one process (the host's own noise), enough to move a median of 5 by 1.15x
    # (benchmarks/NOTES.md, 24 and 27).
    p.add_argument("--steps", type=int, default=10, help="training steps per timing")
    p.add_argument("--repeats", type=int, default=7, help="timings per process (the median is its figure)")
    p.add_argument("--variant", type=parse_variant, action="append", default=[], metavar="NAME:VAR=VALUE,...")
    p.add_argument("--json")
    p.add_argument("--markdown")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args):
    """One measurement in this process; prints one JSON line."""
    load = os.getloadavg()[0]
    from kerascnn.runtime.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf
    from throughput import keras_candidate

    from kerascnn.config import OptimConfig
    from kerascnn.runtime import hardware
    from tuning.spaces import SEED_GRID_LR

    precision = args.precision
    if precision == "auto":  # the product's default, resolved as `fit --precision auto` does
        precision, _ = hardware.auto_precision(hardware.describe())

    if args.setup == "seeds":  # the seed grid's batch-norm arm (vs_torch.py's `seeds` setup)
        options = {"batch_norm": True, "dropout": 0.0} if args.model.startswith("alexnet") else {}
        optim = OptimConfig(optimizer=args.optimizer, lr=SEED_GRID_LR[args.optimizer][0], weight_decay=0.0,
                            schedule="constant")
    else:
        options, optim = None, OptimConfig(optimizer=args.optimizer)
    pipeline, whole_fit = None, None
    if args.timing == "fit-call":
        from kerascnn.data.pipeline import without_autotuning

        pipeline = os.environ.get(PIPELINE_VAR, "product")
        whole_fit = (lambda ds: ds) if pipeline == "autotuned" else without_autotuning
    train, _, _, _ = keras_candidate(args.model, precision, False, args.batch_size, 1, args.image_size,
                                     args.steps, optim=optim, model_options=options, whole_fit=whole_fit)
    reference = reference_products(tf)
    train()  # warm-up: tracing, oneDNN's primitive caches, thread pools
    reference()
    rates, machine, reference_gflops = [], [], []
    for _ in range(args.repeats):
        before = snapshot()
        train()
        after = snapshot()
        machine.append(window(before, after))
        rates.append(args.batch_size * args.steps / machine[-1]["wall_s"])
        start = time.perf_counter()
        reference()
        reference_gflops.append(2 * REFERENCE_N**3 * REFERENCE_PRODUCTS / (time.perf_counter() - start) / 1e9)
    print(json.dumps({
        "images_per_s": statistics.median(rates), "rates": rates, "load_at_start": load, "precision": precision,
        "timing": args.timing, "pipeline": pipeline,
        "reference_gflops": reference_gflops, "machine": machine,
        "affinity": sorted(os.sched_getaffinity(0)),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "env": {k: os.environ[k] for k in ENV_REPORTED if k in os.environ},
    }), flush=True)


def reference_products(tf):
    """A callable running `REFERENCE_PRODUCTS` fixed float32 matrix products in a chain, read back to the host.

    A chain x <- a x (a's entries N(0, 1/n), so x keeps its scale): each
    product needs the one before, so no graph optimisation can merge them
    as it would merge identical products.
    """
    a = tf.random.stateless_normal((REFERENCE_N, REFERENCE_N), seed=(0, 1)) / REFERENCE_N**0.5
    x0 = tf.random.stateless_normal((REFERENCE_N, REFERENCE_N), seed=(0, 2))

    @tf.function
    def products():
        x = x0
        for _ in range(REFERENCE_PRODUCTS):  # unrolled at tracing: one graph, no Python between products
            x = tf.matmul(a, x)
        return tf.reduce_sum(x)

    return lambda: products().numpy()


def run_child(args, env):
    command = [sys.executable, os.path.abspath(__file__), "--child", "--model", args.model, "--optimizer",
               args.optimizer, "--setup", args.setup, "--timing", args.timing, "--batch-size", str(args.batch_size),
               "--image-size", str(args.image_size), "--precision", args.precision, "--steps", str(args.steps), "--repeats",
               str(args.repeats)]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def diagnosis(result):
    """One process's medians of what the machine did during its timings (None where it was not measured)."""
    if "machine" not in result:
        return None

    def median_of(key):
        values = [w[key] for w in result["machine"] if w[key] is not None]
        return statistics.median(values) if values else None

    reference = statistics.median(result["reference_gflops"])
    return {"reference_gflops": reference, "images_per_gflop": result["images_per_s"] / reference,
            "utilisation": median_of("utilisation"), "steal_fraction": median_of("steal_fraction"),
            "others_fraction": median_of("others_fraction")}


def summary(results):
    """Speeds' min, median, max and spread; with the machine measured, the spreads of the reference and of speed over it."""
    rates = [r["images_per_s"] for r in results]
    out = {"min": min(rates), "median": statistics.median(rates), "max": max(rates),
           "spread": max(rates) / min(rates), "meets_target": max(rates) / min(rates) < TARGET_SPREAD}
    found = [diagnosis(r) for r in results]
    if all(found):
        references = [d["reference_gflops"] for d in found]
        relative = [d["images_per_gflop"] for d in found]
        out["reference_spread"] = max(references) / min(references)
        out["relative_spread"] = max(relative) / min(relative)
    return out


def percent(value):
    return "-" if value is None else f"{100 * value:.1f}%"


def markdown(report):
    lines = [
        (f"{report['model']} ({report['setup']}), {report['optimizer']}, batch {report['batch_size']}, "
         f"{report['precision']}: images/s of {report['processes']} fresh processes per variant "
         f"(each the median of {report['repeats']} x {report['steps']} steps"
         f"{', each timing a whole model.fit call' if report.get('timing') == 'fit-call' else ''}); {report['cpu']}"),
        "",
        "| variant | environment | min | median | max | spread (max/min) | every process | "
        "spread of the reference | spread of speed / reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, variant in report["variants"].items():
        s = variant["summary"]
        env = ", ".join(f"{k}={v}" for k, v in variant["env"].items()) or "as given"
        every = " ".join(f"{r['images_per_s']:.0f}" for r in variant["processes"])
        spreads = (f"{s['reference_spread']:.2f} | {s['relative_spread']:.2f}" if "reference_spread" in s
                   else "- | -")
        lines.append(f"| {name} | {env} | {s['min']:.0f} | {s['median']:.0f} | {s['max']:.0f} | "
                     f"{s['spread']:.2f}{'' if s['meets_target'] else ' (over 1.15)'} | {every} | {spreads} |")
    per_process = [(name, i, r, diagnosis(r)) for name, variant in report["variants"].items()
                   for i, r in enumerate(variant["processes"], start=1)]
    if all(d for *_, d in per_process):
        lines += [
            "",
            (f"Per process, medians over its timings: the reference ({REFERENCE_PRODUCTS} float32 "
             f"{REFERENCE_N}x{REFERENCE_N} products after each timing), how busy it kept its CPUs, the share of "
             "the machine stolen by the hypervisor and taken by other processes (`host_counters`)."),
            "",
            "| variant | process | images/s | reference GFLOP/s | images/s per reference GFLOP/s | utilisation | "
            "stolen | other processes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, i, r, d in per_process:
            lines.append(f"| {name} | {i} | {r['images_per_s']:.1f} | {d['reference_gflops']:.0f} | "
                         f"{d['images_per_gflop']:.3f} | {percent(d['utilisation'])} | "
                         f"{percent(d['steal_fraction'])} | {percent(d['others_fraction'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    variants = {"default": {}, **dict(args.variant)}
    results = {name: [] for name in variants}
    for i in range(args.processes):
        for name, env in variants.items():  # alternating, so slow periods hit every variant
            result = run_child(args, env)
            results[name].append(result)
            found = diagnosis(result)
            seen = (f", reference {found['reference_gflops']:.0f} GFLOP/s, utilisation "
                    f"{percent(found['utilisation'])}, stolen {percent(found['steal_fraction'])}, other processes "
                    f"{percent(found['others_fraction'])}") if found else ""
            print(f"{name} process {i + 1}/{args.processes}: {result['images_per_s']:.1f} images/s "
                  f"(load {result['load_at_start']:.2f}{seen})", flush=True)
    report = {
        "model": args.model, "setup": args.setup, "timing": args.timing, "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        # `auto` as the children resolved it on this machine
        "precision": results["default"][0].get("precision", args.precision), "processes": args.processes, "steps": args.steps, "repeats": args.repeats,
        "cpu": cpu_name(),
        "variants": {name: {"env": variants[name], "processes": results[name], "summary": summary(results[name])}
                     for name in variants},
    }
    text = markdown(report)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
