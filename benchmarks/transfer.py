"""Transfer learning end to end on real CIFAR-10, with weights made locally.

    python benchmarks/transfer.py [--model alexnet_cifar] [--source-per-class 1000]
        [--target-per-class 150] [--source-epochs 8] [--target-epochs 10] [--freeze 2]

No ImageNet download works on this machine, so the pretrained weights are
made here: a source network is trained on six CIFAR-10 classes (airplane,
automobile, bird, cat, deer, dog), and its weights are then used through the
product's own path, `fit MODEL --weights SOURCE_RUN_DIR --freeze-backbone E`,
on the other four classes (frog, horse, ship, truck) with few training
images. The same model is trained from scratch on the same images with the
same settings; both are tested on all 4,000 test images of the four target
classes. The classifier of the source (6 classes) does not fit the target (4
classes), so it is re-initialised, as `--weights imagenet` does for CIFAR-10.

The class subsets are symbolic links to the JPEGs of
$KERASCNN_CIFAR10_DIR (train/<class>/, test/<class>/) in a temporary folder;
nothing is copied. Every run goes through `python main.py fit`, so what is
measured is exactly what a user gets. Prints a markdown table: test accuracy,
seconds per epoch (median, first epoch excluded) and trainable parameters.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.errors import DataError, script_exit_status  # noqa: E402  (no TensorFlow: a plain module)
SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog")
TARGET_CLASSES = ("frog", "horse", "ship", "truck")


def link_subset(cifar_dir, dest, classes, train_per_class):
    """dest/train/<class>/ with the first `train_per_class` images, dest/test/<class>/ with all."""
    for split, limit in (("train", train_per_class), ("test", None)):
        for name in classes:
            files = sorted((cifar_dir / split / name).iterdir())[:limit]
            folder = dest / split / name
            folder.mkdir(parents=True)
            for f in files:
                (folder / f.name).symlink_to(f)
    return dest


def fit(run_dir, model, data_dir, epochs, extra):
    command = [
        sys.executable, str(ROOT / "main.py"), "fit", model, "--data-dir", str(data_dir),
        "--run-dir", str(run_dir), "--epochs", str(epochs), "--seed", "0", *extra,
    ]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="alexnet_cifar")
    parser.add_argument("--source-per-class", type=int, default=1000)
    parser.add_argument("--target-per-class", type=int, default=150)
    parser.add_argument("--source-epochs", type=int, default=8)
    parser.add_argument("--target-epochs", type=int, default=10)
    parser.add_argument("--freeze", type=int, default=2, help="--freeze-backbone epochs of the fine-tuning")
    parser.add_argument("--lr", type=float, default=0.01)
    # float32 by default: the README's figure was measured so, before `fit` defaulted to `auto`.
    parser.add_argument("--precision", default="float32", help="fit --precision of every run (default float32)")
    args = parser.parse_args(argv)

    cifar = os.environ.get("KERASCNN_CIFAR10_DIR")
    if not cifar or not (pathlib.Path(cifar) / "train").is_dir():
        raise DataError("set KERASCNN_CIFAR10_DIR to the unpacked cifar10-jpeg folder (train/<class>/, test/<class>/)")
    cifar = pathlib.Path(cifar)

    with tempfile.TemporaryDirectory(prefix="kerascnn-transfer-") as tmp:
        tmp = pathlib.Path(tmp)
        source = link_subset(cifar, tmp / "source", SOURCE_CLASSES, args.source_per_class)
        target = link_subset(cifar, tmp / "target", TARGET_CLASSES, args.target_per_class)
        common = ["--lr", str(args.lr), "--precision", args.precision]
        pretrained = fit(tmp / "source-run", args.model, source, args.source_epochs, common)
        scratch = fit(tmp / "scratch", args.model, target, args.target_epochs, common)
        tuned = fit(
            tmp / "finetuned", args.model, target, args.target_epochs,
            [*common, "--weights", str(tmp / "source-run"), "--freeze-backbone", str(args.freeze)],
        )

    n_target = args.target_per_class * len(TARGET_CLASSES)
    print()
    print(f"Source: {args.model} on {len(SOURCE_CLASSES)} classes x {args.source_per_class} images, "
          f"{args.source_epochs} epochs: test accuracy {pretrained['test_accuracy']:.1%}")
    print(f"Target: {len(TARGET_CLASSES)} other classes, {n_target} training images (10% held out for "
          f"validation), {args.target_epochs} epochs, tested on {1000 * len(TARGET_CLASSES)} images")
    print()
    print("| start | test accuracy | test cross-entropy | s/epoch |")
    print("|---|---|---|---|")
    for label, m in (("from scratch", scratch), (f"--weights source, --freeze-backbone {args.freeze}", tuned)):
        print(f"| {label} | {m['test_accuracy']:.1%} | {m['test_loss']:.3f} | {m['seconds_per_epoch']:.1f} |")


if __name__ == "__main__":
    sys.exit(script_exit_status(main, "transfer.py"))
