"""Time to accuracy: train a recipe on the full CIFAR-10 training set, test every epoch.

    python benchmarks/time_to_accuracy.py alexnet_cifar --recipe fast [--epochs 10] \\
        [--set lr=0.1 --set dropout=0] [--data-dir DIR] [--run-dir DIR] [--targets 0.85 0.88 0.90] [--seed 0] \\
        [--flip-shift-at every|last]
    python benchmarks/time_to_accuracy.py --resume RUN_DIR     (the run's own settings, --flip-shift-at too)

The run is an ordinary `fit` run of MODEL with the recipe's settings (its own
run directory, resumable) on `--data-dir` (default $KERASCNN_CIFAR10_DIR, the
image-folder CIFAR-10 of ../shared/data). A callback tests the current model
on the full test split after every epoch, plain, with flip test-time
augmentation and with flips and one-pixel shifts (airbench's six views;
kerascnn.serving.tta; `--flip-shift-at last` keeps those six views for the
last epoch, a third of the testing time on the others). A run with a weight
average (`ema`) tests the raw weights too, plain and with flips: the same
training with and without the average, an exact pair. That evaluation is
outside the timed training: the seconds are
the run's own `epoch_seconds` (history.csv), measured before the callback
runs. The test figures never choose a model; they say when the run got there.
A resumed run's first epoch pays the process's one-time costs again (tracing
the training step, decoding the images into the cache), as the first epoch of
the run did: an uninterrupted run's seconds are those less the resumes' extra.

Writes into the run directory, after every epoch:
    time_to_accuracy.json   the command, the machine, when the flip-and-shift views are
                            tested (`flip_shift_at`), each resume's command, date and
                            machine, per epoch the training seconds (cumulative), the
                            host that tested it and the test accuracy (plain, flip,
                            flip and shift; the raw weights' beside an average's), and
                            for each target the first epoch and second reaching it
    time_to_accuracy.png    test accuracy against epochs and against seconds
"""

import contextlib
import dataclasses
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402

from kerascnn.analysis.curves import plt  # noqa: E402  (matplotlib, file backend)
from kerascnn.config import RunConfig  # noqa: E402
from kerascnn.config import parse_overrides as overrides  # noqa: E402  (--set NAME=VALUE pairs)
from kerascnn.data.pipeline import test_batches  # noqa: E402
from kerascnn.data.preprocessing import Preprocessing  # noqa: E402
from kerascnn.errors import ConfigError, script_exit_status  # noqa: E402
from kerascnn.models.auxiliary import inference_model  # noqa: E402
from kerascnn.recipes import default_recipe  # noqa: E402
from kerascnn.serving.tta import plain_and_flip_metrics, test_time_metrics  # noqa: E402
from kerascnn.storage import rundir  # noqa: E402
from kerascnn.storage.atomic import save_figure  # noqa: E402
from kerascnn.storage.history import read_history  # noqa: E402
from kerascnn.training.callbacks import backup_epoch  # noqa: E402
from kerascnn.training.data import open_run_source  # noqa: E402
from kerascnn.training.fit import fit  # noqa: E402

RESULT = "time_to_accuracy.json"
PLOT = "time_to_accuracy.png"
DEFAULT_TARGETS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94)
FLIP_SHIFT_AT = ("every", "last")  # when the six flip-and-shift views are tested (measures_flip_shift)


def reached(rows, targets):
    """{target: {"epoch", "seconds"} of the first epoch whose plain test accuracy reached it, or None}."""
    out = {}
    for target in targets:
        first = next((r for r in rows if r["test_accuracy"] >= target), None)
        out[f"{target:.2f}"] = None if first is None else {"epoch": first["epoch"], "seconds": first["train_seconds"]}
    return out


class TestEveryEpoch(keras.callbacks.Callback):
    """After each epoch: the current model on the full test split, written to time_to_accuracy.json."""

    def __init__(self, run_dir, report, batch_size=500, flip_shift_at="every"):
        super().__init__()
        # The run's AveragedWeights under --ema (set by fit's callbacks): the raw weights are tested too.
        self.averaged_weights = None
        self.run_dir = pathlib.Path(run_dir)
        self.report = report
        self.batch_size = batch_size
        self.flip_shift_at = flip_shift_at

    def on_train_begin(self, logs=None):
        # config.json is written before training starts: the run's own data and preprocessing.
        config = RunConfig.load(self.run_dir / rundir.CONFIG)
        preprocessing = Preprocessing.from_dict(config.resolved.preprocessing)
        self.test = test_batches(open_run_source(config), preprocessing, self.batch_size)
        self.machine = machine()  # this process's host, on each row it writes: a resume may run elsewhere
        if not (self.run_dir / RESULT).exists():
            # Written before the first epoch, so that a run stopped before its first test resumes
            # with its own command, date, overrides and --flip-shift-at.
            rundir.write_json(self.run_dir / RESULT, self.report)
        self._catch_up()

    def on_epoch_end(self, epoch, logs=None):
        self._test(epoch + 1, float(logs["epoch_seconds"]), float(logs.get("accuracy", float("nan"))))

    def _catch_up(self):
        """Test the restored model if the backup holds an epoch the report has no row for.

        The backup comes before this callback at an epoch's end, so that a process stopped during
        the test (a session that ends) loses the test, not the epoch's training. The resumed run
        starts from that epoch's state, which BackupAndRestore put into the model before this
        callback's on_train_begin: it is tested now (the weight average in, as at the epoch's end),
        before anything trains, and its row's seconds are history.csv's for every epoch since the
        last row, so the cumulative seconds lose no epoch.
        """
        done = backup_epoch(self.run_dir / rundir.BACKUP)
        last = max((r["epoch"] for r in self.report["rows"]), default=0)
        if done <= last:
            return
        # history.csv (0-based epochs) is written before the backup: it has every epoch the backup holds.
        trained = {int(row["epoch"]) + 1: row for row in read_history(self.run_dir / rundir.HISTORY)}
        if done not in trained:
            return
        seconds = sum(float(trained[e]["epoch_seconds"]) for e in range(last + 1, done + 1) if e in trained)
        average = self.averaged_weights.average_weights() if self.averaged_weights else contextlib.nullcontext()
        with average:
            self._test(done, seconds, float(trained[done].get("accuracy", float("nan"))))

    def _test(self, epoch, epoch_seconds, train_accuracy):
        """Epoch `epoch`'s (1-based) row: the model in memory on the test split; the report rewritten.

        `epoch_seconds` is the training time since the previous row (one epoch's, or more when
        rows were missed); the row's `train_seconds` is cumulative.
        """
        rows = [r for r in self.report["rows"] if r["epoch"] < epoch]  # a resumed run redoes later epochs
        seconds = (rows[-1]["train_seconds"] if rows else 0.0) + epoch_seconds
        start = time.perf_counter()
        network = inference_model(getattr(self.model, "network", self.model))
        row = {"epoch": epoch, "train_seconds": seconds, "machine": self.machine}
        if measures_flip_shift(epoch, self.params["epochs"], self.flip_shift_at):
            metrics = test_time_metrics(network, self.test)
            plain, flip = metrics["plain"], metrics["flip"]
            row["test_flip_shift_accuracy"] = metrics["flip_shift"]["accuracy"]
        else:
            plain, flip = plain_and_flip_metrics(network, self.test)
        row.update({
            "test_accuracy": plain["accuracy"], "test_flip_accuracy": flip["accuracy"],
            "test_loss": plain["cross_entropy"], "train_accuracy": train_accuracy,
        })
        raw = ""
        if self.averaged_weights is not None and self.averaged_weights.holds_average:
            # The same training with and without the average, tested side by side: --ema changes
            # nothing in training, so this pair is exact (no second run, no seed spread).
            with self.averaged_weights.raw_weights():
                raw_plain, raw_flip = plain_and_flip_metrics(network, self.test)
            row.update({"raw_test_accuracy": raw_plain["accuracy"], "raw_test_flip_accuracy": raw_flip["accuracy"]})
            raw = f"; raw weights {raw_plain['accuracy']:.4f}, with flips {raw_flip['accuracy']:.4f}"
        row["eval_seconds"] = time.perf_counter() - start
        rows.append(row)
        self.report["rows"] = rows
        self.report["reached"] = reached(rows, self.report["targets"])
        write_report(self.run_dir, self.report)
        shifted = (f", with flips and shifts {row['test_flip_shift_accuracy']:.4f}"
                   if "test_flip_shift_accuracy" in row else "")
        print(f"epoch {epoch}: {seconds:.0f} s of training, test accuracy {plain['accuracy']:.4f} "
              f"(with flips {flip['accuracy']:.4f}{shifted}){raw}", flush=True)


def measures_flip_shift(epoch, epochs, flip_shift_at):
    """Whether epoch `epoch` (1-based) of `epochs` is tested with airbench's six flip-and-shift views too.

    "every": every epoch. "last": the last epoch only (plain and flips every
    epoch): the six views cost three times the plain-and-flip pass, over a
    minute an epoch for alexnet_cifar in float32 on a 2-core CPU, and the
    run's figure is the last epoch's.
    """
    return flip_shift_at == "every" or epoch >= epochs


def write_report(run_dir, report):
    rundir.write_json(pathlib.Path(run_dir) / RESULT, report)
    rows = report["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "epoch", "epoch"), (axes[1], "train_seconds", "training seconds")):
        ax.plot([r[key] for r in rows], [r["test_accuracy"] for r in rows], "-o", markersize=3, label="plain")
        ax.plot([r[key] for r in rows], [r["test_flip_accuracy"] for r in rows], "--", label="flip TTA")
        raw = [r for r in rows if "raw_test_accuracy" in r]
        if raw:
            ax.plot([r[key] for r in raw], [r["raw_test_accuracy"] for r in raw], "-.", label="raw weights (not averaged)")
        shifted = [r for r in rows if "test_flip_shift_accuracy" in r]  # rows written before it was measured lack it
        if shifted:
            ax.plot([r[key] for r in shifted], [r["test_flip_shift_accuracy"] for r in shifted], ":",
                    label="flip + shift TTA")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (full test set)")
    axes[0].legend()
    fig.suptitle(f"{report['model']}, recipe {report['recipe']}: {report['machine']}")
    fig.tight_layout()
    save_figure(fig, pathlib.Path(run_dir) / PLOT, dpi=100)
    plt.close(fig)


def print_summary(report):
    print(f"{report['model']} ({report['recipe']}) on {report['machine']}")
    for target, where in report["reached"].items():
        text = "not reached" if where is None else f"epoch {where['epoch']}, {where['seconds']:.0f} s"
        print(f"  {float(target):.0%}: {text}")
    last = report["rows"][-1] if report["rows"] else None
    if last:
        shifted = f", flip + shift {last['test_flip_shift_accuracy']:.4f}" if "test_flip_shift_accuracy" in last else ""
        print(f"  final: {last['test_accuracy']:.4f} (flip {last['test_flip_accuracy']:.4f}{shifted}) after "
              f"{last['epoch']} epochs, {last['train_seconds']:.0f} s")
        if "raw_test_accuracy" in last:
            print(f"  raw weights (not averaged): {last['raw_test_accuracy']:.4f} "
                  f"(flip {last['raw_test_flip_accuracy']:.4f})")


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?")
    p.add_argument("--recipe", help="the model's recipe (kerascnn.recipes; `python main.py list`)")
    p.add_argument("--epochs", type=int, help="budget (default: the recipe's)")
    p.add_argument("--data-dir", default=os.environ.get("KERASCNN_CIFAR10_DIR") or None)
    p.add_argument("--run-dir", help="default runs/tta-<model>-<recipe>-seed<seed>")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted measurement")
    p.add_argument("--targets", type=float, nargs="+", default=DEFAULT_TARGETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flip-shift-at", choices=FLIP_SHIFT_AT,
                   help="test with the six flip-and-shift views after every epoch (default) or the last only; "
                   "plain and flip accuracy are tested after every epoch either way; a resumed run keeps "
                   "its own choice unless this is given")
    p.add_argument("--limit-train", type=int, help="smoke runs only: train on N images")
    p.add_argument("--precision", help="default: the run's auto choice")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override one setting of the recipe, as the fit flag of that name would "
                   "(lr=0.1, dropout=0, label_smoothing=0.1, ...); repeatable")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.data_dir = args.data_dir or None  # "" (an unset variable) means no folder
    if args.resume:
        run_dir = pathlib.Path(args.resume)
        report = rundir.read_json(run_dir / RESULT) if (run_dir / RESULT).exists() else None
        config = RunConfig.load(run_dir / rundir.CONFIG)
        if report is None:
            report = new_report(config, args.targets)
        else:
            # Each continuation's command, date and host: the report's own are the run's start.
            report.setdefault("resumes", []).append(
                {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine()})
        # The run's own choice, recorded when it started (runs before 2026-12-05 did not record it:
        # "every", the default they ran with unless told), unless the resuming command names one.
        report["flip_shift_at"] = args.flip_shift_at or report.get("flip_shift_at", FLIP_SHIFT_AT[0])
        fit(resume_dir=run_dir, extra_callbacks=[TestEveryEpoch(run_dir, report, flip_shift_at=report["flip_shift_at"])])
    else:
        if not args.model or not (args.data_dir or args.limit_train):
            raise ConfigError("name a MODEL and give --data-dir (or set KERASCNN_CIFAR10_DIR); "
                              "without data, --limit-train N runs a smoke test on the synthetic set")
        recipe = args.recipe or default_recipe(args.model)
        run_dir = args.run_dir or f"runs/tta-{args.model}-{recipe}-seed{args.seed}"
        settings, options = overrides(args.set)
        flags = dict(
            epochs=args.epochs, data_dir=args.data_dir, run_dir=run_dir, seed=args.seed,
            limit_train=args.limit_train, precision=args.precision, dataset=None if args.data_dir else "synthetic",
        )
        flags.update({k: v for k, v in settings.items() if v is not None})  # --set NAME=VALUE wins
        config = RunConfig.from_flags(args.model, recipe=args.recipe, model_options=options, **flags)
        config = switch_off(config, [k for k, v in settings.items() if v is None])
        report = new_report(config, args.targets)
        report["overrides"] = args.set
        report["flip_shift_at"] = args.flip_shift_at or FLIP_SHIFT_AT[0]
        fit(config, extra_callbacks=[TestEveryEpoch(run_dir, report, flip_shift_at=report["flip_shift_at"])])
    print_summary(rundir.read_json(pathlib.Path(run_dir) / RESULT))
    return 0


def switch_off(config, names):
    """`config` with the settings `names` set to None (`--set ema=None`: off, whatever the recipe says).

    `RunConfig.from_flags` reads None as "not given" and keeps the recipe's
    value, so a setting the recipe turns on (e.g. its weight average) is
    turned off here, after the recipe is resolved.
    """
    for name in names:
        for section in ("data", "optim"):
            part = getattr(config, section)
            if name in {f.name for f in dataclasses.fields(part)}:
                config = config.replace(**{section: dataclasses.replace(part, **{name: None})})
                break
        else:
            config = config.replace(**{name: None})
    return config


def machine():
    """The CPU model and core count (and the GPUs, when TensorFlow sees any)."""
    import tensorflow as tf

    from timing import cpu_name

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return cpu_name() + (f", GPUs {', '.join(gpus)}" if gpus else "")


def new_report(config, targets):
    return {
        "model": config.model,
        "recipe": config.recipe,
        "epochs": config.epochs,
        "command": " ".join(sys.argv),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "targets": list(targets),
        "rows": [],
        "reached": {},
    }


if __name__ == "__main__":
    sys.exit(script_exit_status(main, "time_to_accuracy.py"))
