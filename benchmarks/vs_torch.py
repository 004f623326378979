"""kerascnn's training step against PyTorch at its best, per model, optimizer and batch size (issue 19).

    python benchmarks/vs_torch.py [MODEL:OPTIMIZER:BATCH[:SETUP] ...] [--torch-modes MODE ...]
        [--repeats 5] [--steps 2] [--image-size 32] [--torch-threads N] [--quick] [--json OUT] [--markdown OUT]

Without configurations, the issue's twelve (`DEFAULT_CONFIGS`): alexnet_cifar
as the seeds' study trains it (batch norm, no dropout, no weight decay,
constant learning rate, the grid's larger rate per optimizer:
`tuning/spaces.py` seed-grid) with Adam, RMSprop and SGD at batch 32, 64 and
128; vgg16_bn, resnet18 and googlenet_cifar with `fit`'s defaults (SGD
momentum 0.9, weight decay 5e-4, cosine schedule) at batch 128. SETUP is
`seeds` or `fit` (the default).

For each configuration, images per second of one training step:

- kerascnn at its default precision (`--precision auto`: mixed_bfloat16 on
  CPUs with AMX or AVX512-BF16, float32 elsewhere;
  `kerascnn.runtime.hardware.auto_precision`) and in float32, built and
  compiled exactly as `fit` does (`throughput.keras_candidate`: the model,
  its L2 weight decay, the optimizer, cross-entropy, the metrics), XLA off
  (fit's `--jit auto` on CPUs), in this process;
- the PyTorch reference (`torch_reference.py`: same layers, parameter
  counts asserted equal, same optimizer constants, loss and batch) in each
  of `--torch-modes` (float32 eager, channels_last, bf16 autocast, both,
  torch.compile alone and with both), each mode in its own process
  (`torch_reference.Worker`), warmed up (tracing, compilation) before
  timing. A mode that fails here (torch.compile without a working compiler)
  is reported "unavailable: <reason>" and left out.

All candidates of a configuration are timed round-robin (`timing.interleaved`:
one more untimed warm-up call each, then `--repeats` rounds of `--steps`
steps each), on one fixed random batch in memory; the figure is the median.
PyTorch's fastest mode is the maximum over the modes measured in the same
run. Ratios: kerascnn default / PyTorch fastest (target >= 1.3x) and
kerascnn float32 / PyTorch float32 (target >= 1.0x).

`--peak` also measures, in the same run, the machine's matrix-product peak
at the default precision's compute dtype (`timing.matmul_gflops`: a 4096^2
product, the fastest of 5) and puts each training rate against it, with a
training step counted as 3 x the forward pass's 2 x MACs (forward, input
gradient, weight gradient; batch norm, activations and the update not
counted, and the first layer's unneeded input gradient counted, so the
shares are slight overestimates):

    share of peak  = 3 x 2 x MACs x images/s / peak
    ceiling        = peak / (3 x 2 x MACs x PyTorch's fastest images/s)

the ceiling being the ratio to PyTorch's fastest mode that a program doing
the same arithmetic at 100% of the measured peak would reach: a target
above it cannot be met on this machine by any speed of the same work.
"""

import argparse
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import torch_reference  # noqa: E402
from kerascnn.config import OptimConfig  # noqa: E402
from kerascnn.runtime import hardware  # noqa: E402
from throughput import COMPUTE_DTYPE, keras_candidate  # noqa: E402
from timing import interleaved, matmul_gflops, print_report  # noqa: E402
from tuning.spaces import SEED_GRID_LR  # noqa: E402

SETUPS = ("fit", "seeds")
DEFAULT_CONFIGS = (
    *(f"alexnet_cifar:{opt}:{batch}:seeds" for opt in ("adam", "rmsprop", "sgd") for batch in (32, 64, 128)),
    "vgg16_bn:sgd:128", "resnet18:sgd:128", "googlenet_cifar:sgd:128",
)
QUICK_MODES = ("float32", "channels_last+bf16")
TARGETS = {"default_vs_pytorch_fastest": 1.3, "float32_vs_pytorch_float32": 1.0}
FLOAT32 = "float32"


@dataclasses.dataclass(frozen=True)
class Config:
    """One measured configuration: model, optimizer, batch size and setup (`fit` or `seeds`)."""

    model: str
    optimizer: str
    batch_size: int
    setup: str = "fit"

    @classmethod
    def parse(cls, text):
        parts = text.split(":")
        if not 3 <= len(parts) <= 4 or not parts[2].isdigit() or int(parts[2]) < 1:
            raise argparse.ArgumentTypeError(f"expected MODEL:OPTIMIZER:BATCH[:SETUP], got {text!r}")
        config = cls(parts[0], parts[1], int(parts[2]), *parts[3:])
        if config.model not in torch_reference.MODELS:
            raise argparse.ArgumentTypeError(f"no PyTorch reference for {config.model!r}: {', '.join(torch_reference.MODELS)}")
        if config.optimizer not in torch_reference.OPTIMIZERS:
            raise argparse.ArgumentTypeError(f"optimizer must be one of {', '.join(torch_reference.OPTIMIZERS)}: {text!r}")
        if config.setup not in SETUPS:
            raise argparse.ArgumentTypeError(f"setup must be one of {', '.join(SETUPS)}: {text!r}")
        return config

    def __str__(self):
        return f"{self.model}:{self.optimizer}:{self.batch_size}:{self.setup}"

    def keras_settings(self):
        """(model options, OptimConfig) of this configuration for kerascnn."""
        options = dict(torch_reference.KERASCNN_OPTIONS[self.model])
        if self.setup == "seeds":  # seed-grid's batch-norm arm: no dropout, no decay, constant rate
            options.update(batch_norm=True, dropout=0.0)
            lr = SEED_GRID_LR[self.optimizer][0]
            return options, OptimConfig(optimizer=self.optimizer, lr=lr, weight_decay=0.0, schedule="constant")
        return options, OptimConfig(optimizer=self.optimizer)

    def torch_settings(self):
        """The `Trainer` keyword arguments that mirror `keras_settings`."""
        options, optim = self.keras_settings()
        dropout = {"dropout": options["dropout"]} if "dropout" in options else {}
        return dict(optimizer=self.optimizer, lr=optim.lr, weight_decay=optim.weight_decay, model_options=dropout)


def default_precision():
    """(precision, reason) that `fit --precision auto` picks on this machine."""
    return hardware.auto_precision(hardware.describe())


def bench_config(config, args, precision):
    """The figures of one configuration (a JSON-ready dict)."""
    options, optim = config.keras_settings()
    runs, params = {}, {}
    for p in dict.fromkeys([precision, FLOAT32]):
        key = f"kerascnn {p}"
        runs[key], _, macs, params[key] = keras_candidate(
            config.model, p, False, config.batch_size, 1, args.image_size, args.steps, optim=optim, model_options=options
        )
    workers, unavailable = {}, {}
    try:
        for mode in args.torch_modes:
            worker = torch_reference.Worker(
                config.model, config.batch_size, 0, args.image_size, mode=mode, threads=args.torch_threads,
                **config.torch_settings(),
            )
            if worker.unavailable:
                unavailable[mode] = worker.unavailable
                worker.close()
                print(f"{config}: PyTorch {mode} {worker.unavailable}", file=sys.stderr, flush=True)
                continue
            workers[mode] = worker
            runs[f"pytorch {mode}"] = lambda worker=worker: worker.train_steps(args.steps)
            params[f"pytorch {mode}"] = worker.params
        if len(set(params.values())) != 1:
            raise AssertionError(f"{config}: trainable parameters differ: {params}")
        seconds = interleaved(runs, args.repeats)
    finally:
        for worker in workers.values():
            worker.close()
    rates = {key: config.batch_size * args.steps / statistics.median(s) for key, s in seconds.items()}
    torch_rates = {mode: rates[f"pytorch {mode}"] for mode in workers}
    fastest = max(torch_rates, key=torch_rates.get) if torch_rates else None
    row = {
        "config": str(config), "model": config.model, "optimizer": config.optimizer,
        "batch_size": config.batch_size, "setup": config.setup, "lr": optim.lr,
        "weight_decay": optim.weight_decay, "schedule": optim.schedule, "model_options": options,
        "parameters": next(iter(params.values())),
        "kerascnn_precision": precision,
        "images_per_s": rates, "seconds": seconds, "unavailable": unavailable,
        "kerascnn_default_images_per_s": rates[f"kerascnn {precision}"],
        "kerascnn_float32_images_per_s": rates[f"kerascnn {FLOAT32}"],
        "pytorch_float32_images_per_s": torch_rates.get(FLOAT32),
        "pytorch_fastest_mode": fastest,
        "pytorch_fastest_images_per_s": torch_rates.get(fastest),
        "forward_gflops_per_image": 2 * macs / 1e9,
    }
    ratios = {
        "default_vs_pytorch_fastest": ("kerascnn_default_images_per_s", "pytorch_fastest_images_per_s"),
        "float32_vs_pytorch_float32": ("kerascnn_float32_images_per_s", "pytorch_float32_images_per_s"),
    }
    for name, (num, den) in ratios.items():
        row[name] = row[num] / row[den] if row[den] else None
        row[f"meets_{name}"] = None if row[name] is None else row[name] >= TARGETS[name]
    return row


def against_peak(row, peak_gflops):
    """Add the shares of `peak_gflops` and the ceiling over PyTorch's fastest mode (module docstring) to `row`."""
    train_gflop = 3 * row["forward_gflops_per_image"]
    row["peak_gflops"] = peak_gflops
    row["kerascnn_default_fraction_of_peak"] = train_gflop * row["kerascnn_default_images_per_s"] / peak_gflops
    fastest = row["pytorch_fastest_images_per_s"]
    row["pytorch_fastest_fraction_of_peak"] = None if fastest is None else train_gflop * fastest / peak_gflops
    row["ceiling_vs_pytorch_fastest"] = None if fastest is None else peak_gflops / (train_gflop * fastest)
    return row


def _ratio(value, target):
    if value is None:
        return "n/a"
    return f"**{value:.2f}x**" if value >= target else f"{value:.2f}x (< {target:.1f}x)"


def markdown(rows, modes):
    """The summary table, then every PyTorch mode's images/s."""
    lines = [
        "| model | optimizer | batch | setup | kerascnn default img/s | kerascnn float32 img/s "
        "| PyTorch float32 img/s | PyTorch fastest img/s (mode) | default / fastest | float32 / float32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['optimizer']} | {r['batch_size']} | {r['setup']} "
            f"| {fmt(r['kerascnn_default_images_per_s'])} ({r['kerascnn_precision']}) "
            f"| {fmt(r['kerascnn_float32_images_per_s'])} | {fmt(r['pytorch_float32_images_per_s'])} "
            f"| {fmt(r['pytorch_fastest_images_per_s'])} ({r['pytorch_fastest_mode']}) "
            f"| {_ratio(r['default_vs_pytorch_fastest'], TARGETS['default_vs_pytorch_fastest'])} "
            f"| {_ratio(r['float32_vs_pytorch_float32'], TARGETS['float32_vs_pytorch_float32'])} |"
        )
    lines += ["", "PyTorch images/s per mode:", "", "| configuration | " + " | ".join(modes) + " |",
              "|---|" + "---|" * len(modes)]
    for r in rows:
        cells = [fmt(r["images_per_s"].get(f"pytorch {m}")) if m not in r["unavailable"] else r["unavailable"][m]
                 for m in modes]
        lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    if rows and "peak_gflops" in rows[0]:
        share = lambda v: "n/a" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        lines += ["", f"Against the measured {rows[0]['peak_gflops']:.0f} GFLOP/s matrix-product peak "
                  "(training = 3 x forward FLOPs):", "",
                  "| configuration | forward GFLOP/image | kerascnn default, share of peak | PyTorch fastest, share of peak "
                  "| ceiling over PyTorch fastest | default / fastest |", "|---|---|---|---|---|---|"]
        for r in rows:
            ceiling = r["ceiling_vs_pytorch_fastest"]
            lines.append(
                f"| {r['config']} | {r['forward_gflops_per_image']:.3f} | {share(r['kerascnn_default_fraction_of_peak'])} "
                f"| {share(r['pytorch_fastest_fraction_of_peak'])} | {'n/a' if ceiling is None else f'{ceiling:.2f}x'} "
                f"| {_ratio(r['default_vs_pytorch_fastest'], TARGETS['default_vs_pytorch_fastest'])} |")
    return "\n".join(lines)


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Config.parse, metavar="MODEL:OPTIMIZER:BATCH[:SETUP]")
    parser.add_argument("--torch-modes", nargs="+", type=torch_reference.mode_flag,
                        help=f"PyTorch modes (default all: {' '.join(torch_reference.MODES)})")
    parser.add_argument("--repeats", type=int, help="timings per candidate, median reported (default 5)")
    parser.add_argument("--steps", type=int, help="training steps per timing (default 2)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--torch-threads", type=int, help="PyTorch's threads (default: all CPU threads)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: 2 repeats of 1 step, PyTorch modes {' '.join(QUICK_MODES)}, unless given")
    parser.add_argument("--peak", action="store_true",
                        help="also measure the matrix-product peak at the default precision and show each rate's share "
                             "of it and the highest ratio over PyTorch's fastest that the peak allows")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    parser.add_argument("--markdown", metavar="OUT", help="also write the tables as Markdown")
    args = parser.parse_args(argv)
    args.configs = args.configs or [Config.parse(c) for c in DEFAULT_CONFIGS]
    defaults = {"repeats": 2, "steps": 1, "torch_modes": list(QUICK_MODES)} if args.quick else {
        "repeats": 5, "steps": 2, "torch_modes": list(torch_reference.MODES)}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if FLOAT32 not in args.torch_modes:
        args.torch_modes.insert(0, FLOAT32)  # the float32 pair is always measured

    import torch

    precision, reason = default_precision()
    header = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads; TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, PyTorch {torch.__version__}; kerascnn default precision {precision} ({reason}), "
        f"XLA off; {args.image_size}x{args.image_size}; median of {args.repeats} interleaved timings of "
        f"{args.steps} training step(s); each PyTorch mode in its own process"
    )
    peak = None
    if args.peak:  # before the configurations, in this process, at the default precision's compute dtype
        peak = matmul_gflops(n=512 if args.quick else 4096, dtype=COMPUTE_DTYPE[precision])
        header += f"; {COMPUTE_DTYPE[precision]} matrix-product peak {peak:.0f} GFLOP/s"
    rows = []
    for config in args.configs:
        row = bench_config(config, args, precision)
        rows.append(row if peak is None else against_peak(row, peak))
        keras.backend.clear_session()
        gc.collect()
        print(f"done: {config}", file=sys.stderr, flush=True)
    table = markdown(rows, args.torch_modes)
    print_report(header, table, args.markdown)
    if args.json:
        saved = {**vars(args), "configs": [str(c) for c in args.configs]}
        with open(args.json, "w") as f:
            json.dump({"setup": header, "args": saved, "targets": TARGETS, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
