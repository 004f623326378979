"""The bad-flag battery (issue 20): every flag of every command refuses a bad value the same way.

The real parser (`kerascnn.cli.app.build_parser()`) is walked, so every
command and every flag with a `type=` or `choices` is covered without
editing this file. Each flag type carries the `kerascnn.validation` kind it
checks (`kerascnn.cli.flags.flag_type`); from the kind the battery draws bad
values: NaN, infinities, values just outside the range, "1e999", text, the
empty string, floats for integer kinds (a fixed set), plus a few that
hypothesis generates per flag; for `choices`, text that is none of them.
Each case runs in this process through `tests/battery.py`'s `refuse`: exit
status 2, at most two lines on stderr, no traceback, nothing created on disk;
and it must be refused by the parser, before any handler (and TensorFlow)
runs. A few settings pass the parser and are refused by `RunConfig` or the
handler (`--val-split 0 --patience 3`): those must leave nothing either.
"""

import argparse
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from battery import Tally, refuse
from kerascnn import validation
from kerascnn.cli import app

# Bad values of flags whose grammar a kind cannot describe (a list of
# host:port, GPU indices, names): a new flag of such a kind needs a line here.
LIST_SAMPLES = {
    "--workers": ["a:1", "a:0,b:1", "a:1,b:65536", "a:1,b:x", ":1,:2", "a,b", "a:1,b:nan", "a:1,b:-1", ","],
    "--devices": ["0,-1", "0,,1", "1,x", "0,nan", ",", "0;1"],
    "--arms": ["", ",", " , ,"],
}
# Text no flag accepts, whatever its kind.
NOT_A_NUMBER = ["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "", "x", "1,2"]
MAX_EXAMPLES = 3


# --- the walk ---------------------------------------------------------------


def subparsers():
    parser = app.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def placeholder(action):
    """A valid-looking value of a positional, so that the flag under test is what fails."""
    if action.choices:
        return next(iter(action.choices))
    if action.dest in ("model", "models"):
        return "vgg8"
    if action.dest == "images":
        return "x.png"
    return f"no-such-{action.dest.replace('_', '-')}"


def positionals(parser):
    return [placeholder(a) for a in parser._actions if not a.option_strings and a.nargs != 0]


def walk():
    """(command, flag, action) of every flag or positional with a type or choices."""
    found = []
    for command, parser in subparsers().items():
        for action in parser._actions:
            if action.type is None and not action.choices:
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            found.append((command, name, action))
    return found


CASES = walk()
IDS = [f"{command}{name if name.startswith('-') else ' ' + name}" for command, name, _ in CASES]


def argv_with(command, name, value):
    """The command line of `command` with `value` for the flag or positional `name`."""
    parser = subparsers()[command]
    if name.startswith("-"):
        return [command, *positionals(parser), f"{name}={value}"]
    # A positional: "--" so that a value such as "-x" is read as one.
    values = [value if a.dest == name else placeholder(a)
              for a in parser._actions if not a.option_strings and a.nargs != 0]
    return [command, "--", *values]


# --- what is bad ----------------------------------------------------------------


def number_accepts(kind, text):
    """Whether `text` is a number of `kind` (an independent reading of its bounds)."""
    try:
        x = int(text) if kind.integer else float(text)
    except ValueError:
        return False
    if not math.isfinite(x):
        return False
    if kind.low is not None and (x <= kind.low if kind.low_open else x < kind.low):
        return False
    if kind.high is not None and (x >= kind.high if kind.high_open else x > kind.high):
        return False
    return True


def may_accept(kind, text):
    """Whether `kind` might accept `text`; True when unsure (the value is then not used)."""
    if isinstance(kind, validation.Number):
        return number_accepts(kind, text)
    if isinstance(kind, validation.Either):
        if text.strip().lower() in kind.words:
            return True
        return any(isinstance(k, validation.Number) and number_accepts(k, text) for k in kind.kinds) or (
            "," in text and any(isinstance(k, validation.Sequence) for k in kind.kinds)
        )
    if isinstance(kind, validation.Choice):
        return text.lower() in kind.words
    if isinstance(kind, validation.Shape):
        try:
            parts = [int(p) for p in text.split(",")]
        except ValueError:
            return False
        return 1 <= len(parts) <= kind.length and min(parts) >= 1
    return True  # Sequence, Text: only the samples of LIST_SAMPLES


def just_outside(kind):
    """Texts just outside the bounds of a number kind."""
    out = []
    if kind.low is not None:
        if kind.low_open:
            out += [str(kind.low), repr(float(kind.low))]
        else:
            out.append(str(kind.low - 1) if kind.integer else repr(math.nextafter(kind.low, -math.inf)))
    if kind.high is not None:
        if kind.high_open:
            out += [str(kind.high), repr(float(kind.high))]
        else:
            out.append(str(kind.high + 1) if kind.integer else repr(math.nextafter(kind.high, math.inf)))
    if kind.integer:
        out += ["1.5", "2.0", "1e3", str(2**64 if kind.high is None else kind.high * 2)]
    return out


def numbers_of(kind):
    """The number kinds inside `kind`."""
    if isinstance(kind, validation.Number):
        return [kind]
    if isinstance(kind, validation.Either):
        return [k for k in kind.kinds if isinstance(k, validation.Number)]
    return []


def fixed_bad_values(name, action):
    """The fixed bad values of a flag: NaN, infinities, text, bounds, choices' near misses."""
    kind = getattr(action.type, "kind", None)
    values = list(NOT_A_NUMBER)
    if action.choices:
        values += [c.upper() for c in action.choices if c.upper() != c] + [f"{c} " for c in action.choices][:1]
        return [v for v in dict.fromkeys(values) if v not in action.choices]
    for number in numbers_of(kind):
        values += just_outside(number)
    if isinstance(kind, validation.Shape):
        values += ["0", "0,0", "-1", "1.5", "32,0", "32,-32", ",", "32,", "1,2,3,4", "1,2,3,4,5", "a,b", "32,nan"]
    values = [v for v in values if not may_accept(kind, v)]
    return list(dict.fromkeys(values + LIST_SAMPLES.get(name, [])))  # the samples are bad by choice


def float_text(x):
    return repr(float(x))


def bad_numbers(kind):
    """A hypothesis strategy of texts a number kind refuses."""
    options = [
        st.sampled_from(["nan", "inf", "-inf"]).map(lambda s: s.upper() if len(s) == 3 else s),
        st.text(alphabet="abcdefxyz-+._,eE ", min_size=0, max_size=6),
    ]
    if kind.low is not None:
        options.append(st.floats(max_value=kind.low, exclude_max=not kind.low_open).map(float_text))
        if kind.integer:
            options.append(st.integers(max_value=kind.low - (0 if kind.low_open else 1)).map(str))
    if kind.high is not None:
        options.append(st.floats(min_value=kind.high, exclude_min=not kind.high_open).map(float_text))
        if kind.integer:
            options.append(st.integers(min_value=kind.high + (0 if kind.high_open else 1)).map(str))
    if kind.integer:
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()).map(repr))
    return st.one_of(options)


def bad_values(name, action):
    """A hypothesis strategy of bad values for a flag, from its kind or its choices."""
    kind = getattr(action.type, "kind", None)
    if action.choices:
        choices = set(action.choices)
        return st.text(max_size=12).filter(lambda t: t not in choices)
    if isinstance(kind, validation.Shape):
        positive = st.integers(min_value=1, max_value=512)
        with_zero = st.lists(st.integers(max_value=0) | positive, min_size=1, max_size=kind.length).filter(
            lambda parts: min(parts) < 1
        )
        too_long = st.lists(positive, min_size=kind.length + 1, max_size=kind.length + 3)
        return (with_zero | too_long).map(lambda parts: ",".join(map(str, parts)))
    if isinstance(kind, validation.Choice):
        return st.text(max_size=12).filter(lambda t: t.lower() not in kind.words)
    numbers = numbers_of(kind)
    if numbers:
        return st.one_of([bad_numbers(n) for n in numbers])
    return st.sampled_from(LIST_SAMPLES[name])


# --- the battery -------------------------------------------------------------


@pytest.fixture(scope="module")
def tally():
    counts = Tally("bad-flag battery")
    yield counts
    counts.report()


def refused_by_the_parser(argv, cwd):
    """`refuse(argv)` with the handlers replaced by a failure: the parser alone must refuse."""

    def handler_reached(args):
        raise AssertionError(f"{argv}: the parser accepted it; the handler ran")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(app, "_call_handler", handler_reached)
        return refuse(argv, cwd)


def test_the_walk_finds_every_command_and_flag_and_each_numeric_flag_has_a_kind():
    commands = {command for command, _, _ in CASES}
    assert len(CASES) >= 60 and len(commands) >= 10, (len(CASES), sorted(commands))
    assert {"fit", "tune", "evaluate", "predict", "summary", "study"} <= commands
    untyped = []
    for command, parser in subparsers().items():
        for action in parser._actions:
            numeric_default = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
            if action.type is not None and not isinstance(getattr(action.type, "kind", None), validation.KINDS):
                untyped.append(f"{command} {action.option_strings or action.dest}: type {action.type}")
            elif action.type is None and numeric_default and action.nargs != 0:
                untyped.append(f"{command} {action.option_strings}: a number without a type")
    assert not untyped, f"flags whose values no validation kind checks: {untyped}"
    for command, name, action in CASES:
        kind = getattr(action.type, "kind", None)
        if isinstance(kind, validation.Sequence) or (
            isinstance(kind, validation.Either) and any(isinstance(k, validation.Sequence) for k in kind.kinds)
        ):
            assert name in LIST_SAMPLES, f"{command} {name}: add bad samples to LIST_SAMPLES"
        assert len(fixed_bad_values(name, action)) >= 3, (command, name)


@pytest.mark.parametrize("command, name, action", CASES, ids=IDS)
def test_fixed_bad_values_are_refused_by_the_parser(command, name, action, tmp_path, tally):
    values = fixed_bad_values(name, action)
    for value in values:
        err = refused_by_the_parser(argv_with(command, name, value), tmp_path)
        if name.startswith("-"):
            assert name in err, err
    tally.add(command, len(values))


@pytest.mark.parametrize("command, name, action", CASES, ids=IDS)
def test_generated_bad_values_are_refused_by_the_parser(command, name, action, tmp_path, tally):
    kind = getattr(action.type, "kind", None)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(bad_values(name, action))
    def case(value):
        assume(action.choices or name in LIST_SAMPLES or not may_accept(kind, value))
        refused_by_the_parser(argv_with(command, name, value), tmp_path)
        tally.add(command)

    case()


# Settings each flag accepts, refused together (or later) by RunConfig or the command: still one
# line, exit 2 and nothing on disk (no runs/, tuning_runs/, studies/ or saved_models/ folder).
SETTINGS_CASES = [
    ["fit", "vgg8", "--dataset", "synthetic", "--val-split", "0", "--patience", "3"],
    ["fit", "vgg8", "--dataset", "synthetic", "--val-split", "0", "--schedule", "plateau"],
    ["fit", "vgg8", "--dataset", "synthetic", "--schedule", "plateau", "--warmup-epochs", "2"],
    ["fit", "vgg8", "--dataset", "synthetic", "--freeze-backbone", "2"],
    ["fit", "vgg8", "--dataset", "synthetic", "--workers", "a:1,b:2"],
    ["fit", "vgg8", "--dataset", "synthetic", "--worker-index", "0"],
    ["fit", "vgg8", "--dataset", "synthetic", "--workers", "a:1,b:2", "--worker-index", "5"],
    ["fit", "vgg8", "--dataset", "synthetic", "--devices", "99"],
    ["fit", "vgg8", "--dataset", "synthetic", "--devices", "0,99"],
    ["fit", "vgg8", "--dataset", "mnist", "--data-dir", "pics"],
    ["fit", "vgg8", "--dataset", "synthetic", "--optimizer", "lbfgs"],
    ["fit", "vgg8", "--dataset", "synthetic", "--schedule", "linear"],
    ["fit", "vgg8", "--dataset", "synthetic", "--recipe", "no-such-recipe"],
    ["fit", "vgg8", "--dataset", "synthetic", "--weights", "imagenet", "--init-from", "run"],
    ["fit", "vgg8", "--dataset", "synthetic", "--model-parallel"],
    ["fit", "vgg9", "--dataset", "synthetic"],
    ["fit", "vgg8", "--dataset", "synthetic", "--image-size", "4"],
    ["fit", "vgg8", "--dataset", "synthetic", "--image-size", "2,32", "--augment", "cifar"],
    ["fit", "vgg8", "--resume", "no-such-run", "--lr", "0.1"],
    ["fit", "vgg8", "--dataset", "synthetic", "--run-dir", "afile"],
    ["fit", "vgg8", "--dataset", "synthetic", "--run-dir", "afile/run"],
    ["tune", "vgg8", "--dataset", "synthetic", "--tuner", "no-such-tuner"],
    ["tune", "vgg8", "--dataset", "synthetic", "--space", "no-such-space"],
    ["tune", "vgg8", "--dataset", "synthetic", "--distribution-strategy", "everywhere"],
    ["evaluate", "run", "--dataset", "synthetic", "--data-dir", "pics"],
    ["export", "run", "--quantize", "int8"],
    ["summary", "alexnet", "--input-shape", "8,8,3"],
    ["receptive-field", "vgg8", "vgg9"],
    ["study", "no-such-study"],
    ["study", "alexnet-vs-vgg", "--budget", "huge"],
]


@pytest.mark.parametrize("argv", SETTINGS_CASES, ids=[" ".join(a[:1] + a[2:]) for a in SETTINGS_CASES])
def test_settings_refused_after_parsing_leave_nothing_on_disk(argv, tmp_path, tally):
    (tmp_path / "afile").write_text("not a folder\n")
    refuse(argv, tmp_path)  # the disk as it was: no runs/, tuning_runs/, studies/ or saved_models/
    tally.add(argv[0])
