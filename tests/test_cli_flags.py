"""The CLI's structure: shared flags declared once, value types, imports, pipes."""

import argparse
import os
import pathlib
import subprocess
import sys

import pytest

from kerascnn.cli import flags
from kerascnn.cli.app import build_parser, main

REPO = pathlib.Path(__file__).resolve().parents[1]

# Flags that two commands declare with different meanings, on purpose.
DIFFERENT_ON_PURPOSE = {
    "--batch-size": "fit: per replica, or auto; evaluate: the whole test batch, a number",
    "--format": "summary writes md, csv or json; receptive-field md or json",
    "--dry-run": "tune lists its configurations; study lists its runs with their estimated time",
}


def python(code):
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def subcommands():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_a_flag_shared_by_two_commands_means_the_same():
    seen = {}
    for command, parser in subcommands().items():
        for action in parser._actions:
            for option in action.option_strings:
                if option in ("-h", "--help") or option in DIFFERENT_ON_PURPOSE:
                    continue
                meaning = (action.type, action.choices, action.help, action.nargs, action.const, action.metavar)
                first = seen.setdefault(option, (command, meaning))
                assert meaning == first[1], f"{option} differs between {first[0]} and {command}"
    assert {"--dataset", "--augment", "--precision", "--jit", "--input-shape"} <= set(seen)


def test_tune_has_fits_augment_choices_and_the_precision_flags():
    parsers = subcommands()
    args = parsers["tune"].parse_args(["vgg8", "--precision", "mixed_bfloat16", "--no-jit", "--augment", "none"])
    assert (args.precision, args.jit, args.augment) == ("mixed_bfloat16", False, "none")
    assert parsers["tune"].parse_args(["vgg8", "--jit", "auto"]).jit == "auto"


def test_tune_passes_precision_and_jit_to_the_run_config():
    from tuning.cli import request_from_args

    parser = subcommands()["tune"]
    given = parser.parse_args(["vgg8", "--dataset", "synthetic", "--precision", "float32", "--jit", "off"])
    request = request_from_args(given)
    assert (request.base.precision, request.base.jit) == ("float32", False)
    default = request_from_args(parser.parse_args(["vgg8", "--dataset", "synthetic"]))
    assert (default.base.precision, default.base.jit) == ("auto", "auto")
    assert default.export is False


@pytest.mark.parametrize(
    "convert, good, bad",
    [
        (flags.positive_int, {"3": 3}, ["0", "-1", "x", "1.5"]),
        (flags.non_negative_int, {"0": 0, "7": 7}, ["-1", "x"]),
        (flags.count_or_fraction, {"64": 64, "0.25": 0.25, "1.0": 1.0}, ["0", "1.5", "-3", "many"]),
        (flags.held_out_fraction, {"0.1": 0.1, "0": 0.0}, ["-0.1", "1", "1.5", "nan"]),
        (flags.probability, {"0": 0.0, "1": 1.0}, ["-0.1", "1.01"]),
        (flags.image_size, {"32": (32, 32), "224,160": (224, 160)}, ["0", "1,2,3", "a", ""]),
        (flags.input_shape, {"227,227,3": (227, 227, 3), "32,24": (32, 24, 3), "8": (8, 8, 3)}, ["1,2,3,4", "a,b"]),
        (flags.on_off_auto, {"on": True, "OFF": False, "auto": "auto"}, ["sometimes"]),
        (flags.batch_size, {"auto": "auto", "32": 32}, ["0", "huge"]),
    ],
)
def test_value_types(convert, good, bad):
    for text, value in good.items():
        assert convert(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^must be .*, got {text!r}$"):
            convert(text)


@pytest.mark.parametrize(
    "argv, line",
    [
        (["tune", "vgg8", "--augment", "mixup"], "argument --augment: invalid choice: 'mixup'"),
        (["tune", "vgg8", "--precision", "half"], "argument --precision: invalid choice: 'half'"),
        (["tune-report", "r", "--top", "0"], "--top must be a positive integer, got '0'"),
        (["evaluate", "run", "--batch-size", "0"], "--batch-size must be a positive integer, got '0'"),
        (["predict", "e", "x.png", "--top-k", "-2"], "--top-k must be a positive integer, got '-2'"),
        (["summary", "vgg16", "--num-classes", "0"], "--num-classes must be a positive integer"),
        (["visualize", "vgg16", "--input-shape", "1,2,3,4"], "--input-shape must be H,W,C"),
        (["fit", "vgg11", "--jit", "sometimes"], "--jit must be on, off or auto, got 'sometimes'"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(argv, line, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and line in err and err.startswith(f"kerascnn {argv[0]}: error: "), err


def test_parsing_and_help_import_no_tensorflow():
    out = python(
        "import sys\n"
        "import kerascnn.cli\n"
        "assert not [m for m in sys.modules if m.startswith('kerascnn.cli.')], 'kerascnn.cli imports'\n"
        "import tuning.cli\n"
        "assert 'kerascnn.cli.app' not in sys.modules, 'tuning.cli imports kerascnn.cli.app'\n"
        "from kerascnn.cli.app import build_parser, main\n"
        "build_parser()\n"
        "for argv in ([], ['--help'], ['fit', '--help'], ['tune', '--help'], ['fit', 'vgg11', '--epochs', '0']):\n"
        "    main(argv)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported'\n"
    )
    assert out.returncode == 0, out.stderr


def test_a_closed_pipe_ends_quietly():
    process = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "list"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # like `| head -0`: nobody reads what `list` prints
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err
