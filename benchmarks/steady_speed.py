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
load average when it started.

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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from timing import cpu_name  # noqa: E402  (TensorFlow-free)
ENV_REPORTED = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS",
                "ONEDNN_DEFAULT_FPMATH_MODE", "KMP_AFFINITY", "KMP_BLOCKTIME", "OMP_PROC_BIND")
TARGET_SPREAD = 1.15


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
    from timing import timings

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
    train, _, _, _ = keras_candidate(args.model, precision, False, args.batch_size, 1, args.image_size,
                                     args.steps, optim=optim, model_options=options)
    seconds = timings(train, args.repeats)
    rates = [args.batch_size * args.steps / s for s in seconds]
    print(json.dumps({
        "images_per_s": statistics.median(rates), "rates": rates, "load_at_start": load, "precision": precision,
        "affinity": sorted(os.sched_getaffinity(0)),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "env": {k: os.environ[k] for k in ENV_REPORTED if k in os.environ},
    }), flush=True)


def run_child(args, env):
    command = [sys.executable, os.path.abspath(__file__), "--child", "--model", args.model, "--optimizer",
               args.optimizer, "--setup", args.setup, "--batch-size", str(args.batch_size), "--image-size",
               str(args.image_size), "--precision", args.precision, "--steps", str(args.steps), "--repeats",
               str(args.repeats)]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(results):
    rates = [r["images_per_s"] for r in results]
    return {"min": min(rates), "median": statistics.median(rates), "max": max(rates),
            "spread": max(rates) / min(rates), "meets_target": max(rates) / min(rates) < TARGET_SPREAD}


def markdown(report):
    lines = [
        (f"{report['model']} ({report['setup']}), {report['optimizer']}, batch {report['batch_size']}, "
         f"{report['precision']}: images/s of {report['processes']} fresh processes per variant "
         f"(each the median of {report['repeats']} x {report['steps']} steps); {report['cpu']}"),
        "",
        "| variant | environment | min | median | max | spread (max/min) | every process |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, variant in report["variants"].items():
        s = variant["summary"]
        env = ", ".join(f"{k}={v}" for k, v in variant["env"].items()) or "as given"
        every = " ".join(f"{r['images_per_s']:.0f}" for r in variant["processes"])
        lines.append(f"| {name} | {env} | {s['min']:.0f} | {s['median']:.0f} | {s['max']:.0f} | "
                     f"{s['spread']:.2f}{'' if s['meets_target'] else ' (over 1.15)'} | {every} |")
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
            print(f"{name} process {i + 1}/{args.processes}: {result['images_per_s']:.1f} images/s "
                  f"(load {result['load_at_start']:.2f})", flush=True)
    report = {
        "model": args.model, "setup": args.setup, "optimizer": args.optimizer, "batch_size": args.batch_size,
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
