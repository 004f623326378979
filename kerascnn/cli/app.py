"""Command line: `python main.py SUBCOMMAND ...` (also installed as `kerascnn`).

`build_parser()` assembles the subcommands of the command modules (each has
`add_parsers(sub)`; the flags they share come from `kerascnn.cli.flags`), and
`main()` runs one. The CLI only parses flags into a RunConfig and calls the
library. A mistake by the user ends with one line on stderr and exit status
2; TensorFlow is imported only once the flags are known to be valid.
"""

import os
import sys

from kerascnn.cli import analysis, models, serving, studies, train, weights
from kerascnn.cli.flags import OneLineParser
from kerascnn.errors import UserError, user_error_line
from tuning import cli as tuning_cli

# In the order `--help` lists the subcommands.
COMMAND_MODULES = (models, train, serving, analysis, weights, tuning_cli, studies)


def build_parser():
    parser = OneLineParser(
        prog="kerascnn",
        description="Build, train, evaluate and export the classic CNNs (VGG, ...) with Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv=None):
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside main(), not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`kerascnn list | head -3`): stop without a traceback,
        # and keep the interpreter's final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(argv):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a bad flag already reported in one line
        return e.code
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return _call_handler(args)


def _call_handler(args):
    command = f"kerascnn {args.command}"
    try:
        from kerascnn.runtime.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        return args.handler(args)
    except UserError as e:
        print(user_error_line(command, e), file=sys.stderr)
        return 2
    except RuntimeError as e:
        from kerascnn.serving.export import ExportError

        if not isinstance(e, ExportError):
            raise
        print(f"{command}: export failed: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        from kerascnn.errors import disk_error_text, is_disk_error

        if not is_disk_error(e):
            raise
        # Files are written whole or not at all (kerascnn.storage.atomic): nothing half-written is left.
        print(f"{command}: error: {disk_error_text(e)}; free some space and run the command again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = {"fit": " (continue with `fit --resume RUN_DIR`)",
                "study": " (run the same command again to continue)"}.get(args.command, "")
        print(f"{command}: interrupted{hint}", file=sys.stderr)
        return 130
