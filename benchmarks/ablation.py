"""Ablation: a recipe, then the same recipe with one technique switched off, at a fixed budget.

    python benchmarks/ablation.py alexnet_cifar --recipe fast --epochs 4 --out runs/ablation-alexnet_cifar
    python benchmarks/ablation.py alexnet_cifar --recipe fast --epochs 4 --out DIR --only baseline no_cutout

Each variant is a `benchmarks/time_to_accuracy.py` run (a real `fit` on the
full CIFAR-10 training set, the full test set after every epoch) in its own
run directory `OUT/<variant>`, started as a child process so that each has the
machine's memory to itself. A finished variant is not run again and an
interrupted one is resumed, so the command can be repeated until the table is
complete. The variants run one after another: their seconds are comparable
only when nothing else ran on the machine.

Writes OUT/ablation.json and OUT/ablation.md: per variant the change, the last
epoch's test accuracy (plain and with flip test-time augmentation) and its
difference from the full recipe, and the training seconds. Flip TTA needs no
run of its own: every row reports both figures. With `--seeds 0 1`, every
variant runs once per seed and the table gives the mean (and each seed).
Seed 0 runs in OUT/<variant> and seed N in OUT/<variant>-seed<N>, so a
one-seed table gains a second seed for the rows that need one without
running the first again. A row's difference is taken against the baseline's
runs of the same seeds (paired), and a row says how many seeds it has.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.errors import ConfigError, script_exit_status  # noqa: E402  (no TensorFlow: a plain module)
RESULT = "time_to_accuracy.json"  # time_to_accuracy.RESULT; not imported, which would load TensorFlow here

# variant: (what is switched off, --set overrides). The names are the run settings
# and builder options of kerascnn.recipes; a variant that does not apply to the
# model (e.g. zero_init_residual for a VGG) is refused by its builder.
VARIANTS = {
    "baseline": ("nothing: the recipe as it is", []),
    "no_logit_scale": ("logits not scaled (logit_scale 1)", ["logit_scale=1.0"]),
    "with_logit_scale": ("(added) logits scaled by 0.125, cifar10-fast's Mul(0.125)", ["logit_scale=0.125"]),
    "no_label_smoothing": ("label smoothing 0", ["label_smoothing=0.0"]),
    "no_cutout": ("no cutout", ["cutout=0"]),
    "no_augmentation": ("no crops or flips (nor cutout)", ["augment=none", "cutout=0"]),
    "with_cutout": ("(added) cutout 8x8", ["cutout=8"]),
    "translate_2": ("(changed) crops shifted by at most 2 pixels, not 4 (airbench's)", ["translate=2"]),
    # alexnet_cifar's recipe has 2-pixel crops since 2026-12-06; this switches them back off.
    "translate_4": ("(changed) crops shifted by at most 4 pixels, the cifar preset's, not 2", ["translate=4"]),
    "flips_only": ("no crops, flips kept (translate 0)", ["translate=0"]),
    # airbench's identity start (kerascnn.layers.DiracStart); alexnet_cifar's recipe has it since 2026-12-07.
    "with_dirac_start": ("(added) every convolution starts as the identity on its first C_in filters",
                         ["conv_init=dirac"]),
    "no_dirac_start": ("convolutions start as He fan-out normal draws, not the identity", ["conv_init=fan_out"]),
    # airbench's derandomised flip (kerascnn.data.augment.alternating_flips, Jordan 2024, 3.6).
    "with_alternating_flip": ("(changed) each image mirrored every other epoch, not at random", ["flip=alternating"]),
    "no_flip": ("no flips, crops kept", ["flip=none"]),
    "no_nesterov": ("classical momentum, not Nesterov", ["nesterov=False"]),
    "no_onecycle": ("cosine decay from the peak, no warm-up, instead of one-cycle", ["schedule=cosine", "warmup_epochs=0"]),
    "no_batch_norm": ("no batch normalisation", ["batch_norm=False"]),
    "with_ema": ("(added, not removed) weight average, decay 0.99 a step", ["ema=0.99"]),
    "no_ema": ("no weight average", ["ema=None"]),
    # Lookahead on airbench's schedule (kerascnn.training.lookahead): acts on training, where --ema only watches.
    "with_lookahead": ("(added) lookahead every 5 steps, airbench's decay 0.95^5 (t/T)^3", ["lookahead=5"]),
    "with_dropout": ("(added) dropout 0.5 in the dense head", ["dropout=0.5"]),
    # airbench's bias scaler (kerascnn.training.norm_parameters): 64 cut its epochs to 94% from 22 to 18.
    "with_bn_bias_lr_x64": ("(added) batch-norm offsets at 64x the learning rate", ["bn_bias_lr_scale=64.0"]),
    "with_frozen_bn_scale": ("(added) batch-norm scales not trained (gamma stays 1)", ["freeze_bn_scale=True"]),
    "with_airbench_bn": ("(added) both: offsets at 64x the learning rate, scales frozen",
                         ["bn_bias_lr_scale=64.0", "freeze_bn_scale=True"]),
    "no_airbench_bn": ("batch-norm offsets at the learning rate and scales trained (Keras' own treatment)",
                       ["bn_bias_lr_scale=1.0", "freeze_bn_scale=False"]),
    # PyTorch's and airbench's decay of every trained weight (kerascnn.training.optim.decay_norm_and_bias).
    "with_decay_norm_and_bias": ("(added) weight decay on biases and batch-norm parameters too",
                                 ["decay_norm_and_bias=True"]),
    "with_whitening": ("(added) first convolution initialised as a frozen patch-whitening transform", ["whiten=True"]),
    "half_batch": ("(changed) half the batch, the learning rate halved with it (twice the steps)", ["batch_size=HALF"]),
    # The logit scale sets how fast the head, and through it every layer, learns (a gradient step
    # moves the logits by about lr * scale**2 * |h|**2; models.common.classifier_logits):
    # the recipe's 0.125 was cifar10-fast's figure at batch 512, not a measured optimum.
    "double_logit_scale": ("(changed) logits scaled by twice the recipe's factor", ["logit_scale=DOUBLE_LOGIT_SCALE"]),
    "half_logit_scale": ("(changed) logits scaled by half the recipe's factor", ["logit_scale=HALF_LOGIT_SCALE"]),
    # The peak learning rate and the weight decay at the recipe's batch: every recipe run so
    # far kept lr / batch and the decay fixed (half_batch halves both lr and batch), and with
    # batch norm their product sets the effective step of the scale-free weights.
    "double_lr": ("(changed) twice the peak learning rate, same batch", ["lr=DOUBLE_LR"]),
    "half_lr": ("(changed) half the peak learning rate, same batch", ["lr=HALF_LR"]),
    "double_weight_decay": ("(changed) twice the weight decay", ["weight_decay=DOUBLE_WD"]),
    "half_weight_decay": ("(changed) half the weight decay", ["weight_decay=HALF_WD"]),
}


PLACEHOLDERS = ("DOUBLE_LOGIT_SCALE", "HALF_LOGIT_SCALE", "DOUBLE_LR", "HALF_LR", "DOUBLE_WD", "HALF_WD", "HALF")
# A placeholder is a whole word: HALF never matches inside HALF_LR.
PLACEHOLDER_WORD = re.compile(r"\b(" + "|".join(PLACEHOLDERS) + r")\b")


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--recipe", default="fast")
    p.add_argument("--epochs", type=int, required=True, help="the fixed budget of every variant")
    p.add_argument("--out", required=True, help="folder of the variants' run directories and the table")
    p.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="run these variants (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="change the recipe for every variant, baseline included (time_to_accuracy.py --set)")
    p.add_argument("--data-dir", default=os.environ.get("KERASCNN_CIFAR10_DIR") or None)
    p.add_argument("--limit-train", type=int, help="smoke runs only: N images of the synthetic set")
    p.add_argument("--table-only", action="store_true", help="write the table from the runs there, run nothing")
    return p.parse_args(argv)


def finished(run_dir, epochs):
    """The variant's report when its last epoch has been tested, else None."""
    path = run_dir / RESULT
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    rows = report.get("rows", [])
    return report if rows and rows[-1]["epoch"] >= epochs else None


def variant_overrides(args, name):
    """The variant's --set pairs, their placeholders resolved against the recipe (and --set).

    HALF: half the batch size (only the batch is given, so the recipe scales
    its learning rate with it, kerascnn.recipes). DOUBLE_LOGIT_SCALE and
    HALF_LOGIT_SCALE: twice and half the recipe's logit scale (1 where it sets none).
    DOUBLE_LR and HALF_LR: twice and half the peak learning rate the run would
    have (the recipe's, scaled to a batch given with --set, or --set's own);
    DOUBLE_WD and HALF_WD: the same for the weight decay.
    """
    pairs = VARIANTS[name][1]
    if not any(token in pair for pair in pairs for token in PLACEHOLDERS):
        return pairs
    from kerascnn.recipes import get_recipe

    recipe = get_recipe(args.model, args.recipe)
    given = dict(pair.split("=", 1) for pair in args.set)
    batch = int(given.get("batch_size", recipe.settings.get("batch_size", 128)))
    scale = float(given.get("logit_scale", recipe.model_options.get("logit_scale", 1.0)))
    # The recipe's rate at this batch, as the run will resolve it (Recipe.resolve's linear scaling).
    lr = float(given["lr"]) if "lr" in given else float(recipe.resolve({"batch_size": batch}).get("lr", 0.01))
    decay = float(given.get("weight_decay", recipe.settings.get("weight_decay", 5e-4)))
    values = {
        "DOUBLE_LOGIT_SCALE": repr(2 * scale), "HALF_LOGIT_SCALE": repr(scale / 2), "HALF": str(batch // 2),
        "DOUBLE_LR": repr(2 * lr), "HALF_LR": repr(lr / 2), "DOUBLE_WD": repr(2 * decay), "HALF_WD": repr(decay / 2),
    }
    return [PLACEHOLDER_WORD.sub(lambda match: values[match.group(1)], pair) for pair in pairs]


def variant_dir(args, name, seed):
    """OUT/<variant> for seed 0, OUT/<variant>-seed<N> for seed N.

    Seed 0's folder does not depend on how many seeds are asked for, so the
    rows that need a second seed can get one later (`--seeds 0 1 --only ...`).
    """
    return pathlib.Path(args.out) / (name if seed == 0 else f"{name}-seed{seed}")


def run_variant(args, name, seed):
    run_dir = variant_dir(args, name, seed)
    if finished(run_dir, args.epochs):
        return
    command = [sys.executable, str(HERE / "time_to_accuracy.py")]
    if (run_dir / "config.json").exists():
        command += ["--resume", str(run_dir)]
    else:
        command += [args.model, "--recipe", args.recipe, "--epochs", str(args.epochs), "--seed", str(seed),
                    "--run-dir", str(run_dir)]
        command += [f"--set={pair}" for pair in [*args.set, *variant_overrides(args, name)]]
        # Always passed, empty for the synthetic set: the child must not fall back to
        # $KERASCNN_CIFAR10_DIR when the parent chose the synthetic smoke run.
        command += ["--data-dir", args.data_dir or ""]
        if args.limit_train:
            command += ["--limit-train", str(args.limit_train)]
    print(f"ablation: {name} (seed {seed}): {' '.join(command[1:])}", flush=True)
    run_child(command)


def run_child(command):
    """Run one variant's `time_to_accuracy.py` command line in its own process."""
    subprocess.run(command, check=False)


def _last_epochs(args, name):
    """{seed: the last epoch's row} of the variant's runs that finished, for the seeds asked for."""
    last = {}
    for seed in args.seeds:
        report = finished(variant_dir(args, name, seed), args.epochs)
        if report is not None:
            last[seed] = report["rows"][args.epochs - 1]
    return last


def _mean(rows, key):
    return sum(row[key] for row in rows) / len(rows)


def table(args, names):
    """Rows of the variants that finished, baseline first, and the markdown of them.

    A row is the mean over its finished seeds; its difference is against the
    baseline's mean over the same seeds, so that seed-to-seed variation is
    not counted as an effect (None when the baseline lacks one of them).
    """
    base = _last_epochs(args, "baseline")
    rows = []
    for name in names:
        last = _last_epochs(args, name)
        if not last:
            rows.append({"variant": name, "change": VARIANTS[name][0], "finished": False})
            continue
        seeds = sorted(last)
        paired = all(seed in base for seed in seeds)
        accuracy = _mean(last.values(), "test_accuracy")
        rows.append({
            "variant": name, "change": VARIANTS[name][0], "finished": True, "seeds": seeds,
            "test_accuracy": accuracy, "test_flip_accuracy": _mean(last.values(), "test_flip_accuracy"),
            "per_seed": [last[seed]["test_accuracy"] for seed in seeds],
            "train_seconds": _mean(last.values(), "train_seconds"),
            "difference": accuracy - _mean([base[seed] for seed in seeds], "test_accuracy") if paired else None,
            "overrides": variant_overrides(args, name),
        })
    lines = [
        "| variant | change | seeds | test accuracy | with flips | difference | training seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row["finished"]:
            lines.append(f"| {row['variant']} | {row['change']} | | not run yet | | | |")
            continue
        delta = ("baseline not run for these seeds" if row["difference"] is None
                 else f"{100 * row['difference']:+.2f} points")
        each = "" if len(row["per_seed"]) == 1 else " (" + ", ".join(f"{a:.2%}" for a in row["per_seed"]) + ")"
        lines.append(
            f"| {row['variant']} | {row['change']} | {', '.join(map(str, row['seeds']))} "
            f"| {row['test_accuracy']:.2%}{each} | {row['test_flip_accuracy']:.2%} | {delta} "
            f"| {row['train_seconds']:.0f} |"
        )
    return rows, "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    names = args.only or list(VARIANTS)
    if "baseline" not in names:
        names = ["baseline", *names]
    if not args.table_only:
        if not (args.data_dir or args.limit_train):
            raise ConfigError("give --data-dir (or set KERASCNN_CIFAR10_DIR); --limit-train N runs a smoke test")
        for name in names:
            for seed in args.seeds:
                run_variant(args, name, seed)
    rows, markdown = table(args, names)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    changed = f" with {', '.join(args.set)}" if args.set else ""
    header = (f"{args.model}, recipe {args.recipe}{changed}, {args.epochs} epochs, seeds {args.seeds}: "
              "the last epoch's model on the full test set\n\n")
    (out / "ablation.json").write_text(json.dumps({"model": args.model, "recipe": args.recipe, "set": args.set,
                                                    "epochs": args.epochs, "seeds": args.seeds, "rows": rows}, indent=2))
    (out / "ablation.md").write_text(header + markdown)
    print(header + markdown)
    return 0


if __name__ == "__main__":
    sys.exit(script_exit_status(main, "ablation.py"))
