"""The command line: `python main.py COMMAND ...` (also installed as `kerascnn`).

    flags      every shared flag and value type, the one-line-error parser, add_command
    app        build_parser() and main(): assembles the command modules below
    models     list
    train      fit
    serving    evaluate, export, predict
    analysis   summary, receptive-field, visualize, compare
    weights    import-weights
    (tuning.cli: tune, tune-report)

Nothing is imported here, so that `from kerascnn.cli import flags` (as
tuning.cli does) loads no command module; `main` below loads `app` when called.
"""


def main(argv=None):
    """Run the command line on `argv` (default sys.argv[1:]); return the exit status."""
    from kerascnn.cli.app import main as run

    return run(argv)
