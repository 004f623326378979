"""`study` and `study-report`: the classic comparisons, one command each, with a report.

Registered on the main parser by `kerascnn.cli.app.build_parser()`. The
handlers parse nothing beyond argparse; the study file is read and checked
by `kerascnn.studies` (a bad file is one line, exit status 2), and
TensorFlow is imported only inside them.
"""

import pathlib

from kerascnn.cli import flags
from kerascnn.validation import Sequence, Text

BUDGETS_HELP = (
    "how much to train (default %(default)s): smoke (generated data, minutes), short (about an hour on a "
    "2-core CPU), full (the recipes' budgets), or another budget the study file defines"
)
# Shown in --help; replaced by studies/<study>-<budget> when the flag is not given.
OUT_DEFAULT = "studies/<study>-<budget>"


def _names(text):
    return [n.strip() for n in text.split(",") if n.strip()]


arm_names = flags.flag_type(_names, Sequence(Text("an arm name"), "arm names separated by commas"))


def add_parsers(sub):
    p = flags.add_command(sub, "study", cmd_study, epilog=flags.EPILOG)
    p.add_argument("study", nargs="?", metavar="NAME|FILE",
                   help="a shipped study (see `study` without arguments) or a .toml study file")
    p.add_argument("--budget", default="short", help=BUDGETS_HELP)
    flags.add_data_flags(p)
    flags.add_flags(p, "--out", default=OUT_DEFAULT)
    p.add_argument("--arms", type=arm_names, metavar="ARM,...",
                   help="run only these arms (and the arms they start from); the report shows every finished arm")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs, their state and the estimated time, and exit")
    p.add_argument("--timings-from", action="append", metavar="DIR",
                   help="run folders whose measured seconds per epoch the dry run uses (default runs/; repeatable)")

    p = flags.add_command(sub, "study-report", cmd_study_report)
    p.add_argument("study_dir", metavar="DIR", help="the folder of a `study` run")


def cmd_study(args):
    """run a study (arms x seeds, or a search) and write its report

    Run every arm of the study NAME (shipped) or FILE (your own .toml) at
    --budget as ordinary run directories under --out, then write report.md,
    a self-contained report.html and results.csv there. Re-running the same
    command skips finished runs and resumes an interrupted one. Without
    NAME, list the shipped studies.
    """
    from kerascnn.studies.catalog import find_study, shipped_names

    if args.study is None:
        for name in shipped_names():
            print(f"{name:<16} {find_study(name).title}")
        return 0
    from kerascnn.studies.plan import plan_study
    from kerascnn.studies.runner import dry_run, run_study

    study = find_study(args.study)
    plan = plan_study(study, args.budget, dataset=args.dataset, data_dir=args.data_dir)
    out = pathlib.Path(f"studies/{study.name}-{args.budget}" if args.out == OUT_DEFAULT else args.out)
    if args.dry_run:
        return dry_run(plan, out, args.arms, tuple(args.timings_from or ("runs",)))
    run_study(plan, out, args.arms)
    return 0


def cmd_study_report(args):
    """rewrite the report of a study folder from its runs

    Rebuild report.md, report.html and results.csv of DIR (a `study`
    folder) from study.json and the run directories alone; works on a
    running, interrupted or finished study.
    """
    from kerascnn.studies.report import write_report

    for path in write_report(args.study_dir):
        print(f"wrote {path}")
    return 0
