"""Every benchmark script with flags reports a bad one as the CLI does: one line on stderr, exit 2.

argparse's own error prints the usage block and the message (two or more
lines); the scripts use the CLI's `OneLineParser` instead. Each script is
imported here and its `main` called in-process with a flag it does not have.
"""

import importlib
import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

# The scripts that parse flags (model_table.py and torch_reference.py take none).
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if "OneLineParser(" in p.read_text())


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert ": error: " in err and "--help" in err, err
    return err


def test_every_script_that_parses_flags_uses_the_one_line_parser():
    with_flags = sorted(p.stem for p in BENCHMARKS.glob("*.py") if "add_argument(" in p.read_text())
    assert with_flags == SCRIPTS and len(SCRIPTS) >= 17


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_bad_flag_is_one_line_on_stderr_and_exit_2(script, capsys):
    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--no-such-flag"])
    assert exit_.value.code == 2
    # A script with required arguments names those first, the others the unknown flag.
    err = one_error_line(capsys)
    assert "--no-such-flag" in err or "required" in err


def test_serving_latency_without_model_names_times_the_issues_four_models():
    # Python 3.11's argparse refused a "*" positional with choices whenever no
    # model was named (it checked the default list as one choice).
    import serving_latency

    assert serving_latency.parse_args(["--quick"]).models == ["alexnet_cifar", "vgg16_bn", "resnet18", "googlenet_cifar"]
    assert serving_latency.parse_args(["resnet18", "--quick"]).models == ["resnet18"]


@pytest.mark.parametrize("argv, says", [
    (["lenet"], "no PyTorch reference for lenet"),
    (["alexnet_cifar", "--torch-modes", "fp8"], "--torch-modes: mode must be"),
])
def test_serving_latency_refuses_an_unknown_model_or_mode_in_one_line(argv, says, capsys):
    import serving_latency

    with pytest.raises(SystemExit) as exit_:
        serving_latency.parse_args(argv)
    assert exit_.value.code == 2 and says in one_error_line(capsys)


def test_vs_torch_refuses_an_unknown_mode_in_one_line(capsys):
    import vs_torch

    with pytest.raises(SystemExit) as exit_:
        vs_torch.main(["alexnet_cifar:sgd:32", "--torch-modes", "fp8"])
    assert exit_.value.code == 2 and "--torch-modes: mode must be" in one_error_line(capsys)
