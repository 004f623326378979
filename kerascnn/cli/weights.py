"""`import-weights`: weights of other frameworks as kerascnn weights files.

    python main.py import-weights torchvision resnet18 resnet18-f37072fd.pth

Writes a `.keras` file (the kerascnn model with the weights, plus a
`kerascnn.json` entry naming the model, its options and the input
normalisation) for `fit MODEL --weights FILE`: by default FILE with the
suffix `.keras`, beside it; atomically; and never over an existing file
unless `--force`. Registered on the main parser by
`kerascnn.cli.app.build_parser()`; a mistake in what was asked raises a
`UserError`, printed as one line with exit status 2.
"""

import pathlib

from kerascnn.cli import flags
from kerascnn.errors import UserError

SOURCES = ("torchvision",)


def add_parsers(sub):
    from kerascnn.weights.torchvision import FAMILIES

    p = flags.add_command(sub, "import-weights", cmd_import_weights)
    p.add_argument("source", choices=SOURCES)
    p.add_argument("model", metavar="MODEL", help=f"one of: {', '.join(sorted(FAMILIES))}")
    p.add_argument("pth", metavar="FILE.pth")
    p.add_argument(
        "--output", metavar="OUT.keras", help="where to write (default: FILE with the suffix .keras, beside it)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing output file (refused without)")


def cmd_import_weights(args):
    """convert a torchvision .pth state dict into a kerascnn weights file

    Map a torchvision state dict into the matching kerascnn model (conv kernels
    transposed, the first FC layer's inputs reordered from channels-first
    flattening, batch-norm statistics carried) and write a .keras file for
    `fit MODEL --weights FILE`. Needs PyTorch (pip install -e '.[bench]').
    torchvision's alexnet becomes kerascnn's alexnet_v2; googlenet becomes
    googlenet with layout='torchvision', without the auxiliary heads (their
    weights are left out).
    """
    from kerascnn.weights.torchvision import FAMILIES

    if args.model not in FAMILIES:
        raise UserError(f"no torchvision mapping for {args.model!r}; choose one of {', '.join(sorted(FAMILIES))}")
    pth = pathlib.Path(args.pth)
    if not pth.is_file():
        raise UserError(f"no such file: {pth}")
    output = pathlib.Path(args.output) if args.output else pth.with_suffix(".keras")
    if output.suffix != ".keras":
        raise UserError(f"--output must end in .keras. Received: {output}")
    if output.is_dir():
        raise UserError(f"--output {output} is a folder; name a .keras file")
    # An existing weights file may be the only copy of something: replaced only when asked.
    if output.exists() and not args.force:
        raise UserError(f"{output} exists; pass --force to replace it or choose another --output")
    from kerascnn.weights.torchvision import import_torchvision

    path, model_name, mapped, ignored = import_torchvision(args.model, pth, output)
    left_out = f" ({ignored} auxiliary-head tensors left out)" if ignored else ""
    print(f"torchvision {args.model} -> kerascnn {model_name}: {mapped} tensors mapped{left_out}, written to {path}")
    return 0
