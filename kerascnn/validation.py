"""Validators of settings by kind of value, each defined once.

A kind is called as `kind(name, value)`: it returns the value (a shape as a
tuple, a sequence as a list) or raises `ConfigError("NAME must be EXPECTED. Received: NAME=VALUE")`.
Every numeric kind refuses booleans (`True` is not 1 epoch), NaN and
infinities, so `nan <= 0`-style checks, which are False, cannot let them pass.
`RunConfig` checks its fields with these kinds and the CLI's flag types
(`kerascnn.cli.flags.flag_type`) are built from the same objects, so a bound
is written in one place.

    positive_int        1, 2, ...
    non_negative_int    0, 1, ...
    positive_float      a finite number > 0
    non_negative_float  a finite number >= 0
    interval(...)       a finite number (or integer) between bounds, each open or closed
    rate                a number in [0, 1)
    in_range(...)       checks a value against an interval directly
    Shape(length)       `length` positive integers
    Either(...)         the first of several kinds that accepts, or one of some words
    Choice(...)         one of some values (the CLI maps words such as on/off to them)
    Sequence(...)       a list of values of one kind (GPU indices, arm names)
    Text(...)           a non-empty string without spaces at its ends

This module imports nothing heavy (the CLI uses it before TensorFlow loads).
"""

import math
import numbers

from kerascnn.errors import ConfigError


def _fmt(x):
    return f"{x:g}" if isinstance(x, float) else str(x)


class Kind:
    """A kind of value: `accepts(value)` says whether a value is one, `kind(name, value)` checks it.

    Subclasses define `accepts` and, when the checked value is returned in another form
    (a shape as a tuple), `convert`.
    """

    expected = "a value"

    def accepts(self, value):
        raise NotImplementedError

    def convert(self, value):
        return value

    def received(self, value):
        """The value as the message shows it after "Received: NAME="."""
        return value

    def __call__(self, name, value):
        """`value` (converted), or ConfigError "NAME must be EXPECTED. Received: NAME=VALUE"."""
        if not self.accepts(value):
            raise ConfigError(f"{name} must be {self.expected}. Received: {name}={self.received(value)}")
        return self.convert(value)

    def __repr__(self):
        return f"{type(self).__name__}({self.expected!r})"


class Number(Kind):
    """Numbers of one kind: integers or reals, finite, optionally bounded.

    Args:
        expected: the kind in words, as it reads after "must be" ("a positive integer").
        integer: accept only integers (3, not 3.0).
        low, high: the bounds; None is unbounded.
        low_open, high_open: exclude the bound itself.
    """

    def __init__(self, expected, integer=False, low=None, high=None, low_open=False, high_open=False):
        self.expected = expected
        self.integer = integer
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open

    def accepts(self, value):
        """Whether `value` is a number of this kind (never a bool, NaN or an infinity)."""
        number = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, number):
            return False
        if not isinstance(value, numbers.Integral):
            try:
                if not math.isfinite(value):
                    return False
            except (TypeError, OverflowError):
                return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


positive_int = Number("a positive integer", integer=True, low=1)
non_negative_int = Number("an integer >= 0", integer=True, low=0)
# "number" in messages means a finite one: NaN and infinities are refused by every kind.
positive_float = Number("a positive number", low=0, low_open=True)
non_negative_float = Number("a number >= 0", low=0)


def interval(low, high, low_open=False, high_open=False, integer=False, expected=None):
    """The kind "a number in [low, high)" (brackets as the bounds are closed or open).

    `expected` replaces the words of messages ("a probability in [0, 1]").
    """
    if expected is None:
        brackets = ("(" if low_open else "[") + "{}, {}" + (")" if high_open else "]")
        expected = f"{'an integer' if integer else 'a number'} in " + brackets.format(_fmt(low), _fmt(high))
    return Number(expected, integer=integer, low=low, high=high, low_open=low_open, high_open=high_open)


# A number in [0, 1): dropout, momentum, label smoothing.
rate = interval(0, 1, high_open=True)


def in_range(name, value, low, high, low_open=False, high_open=False):
    """`value` if it is a finite number in [low, high] (an open bound excluded), else ConfigError."""
    return interval(low, high, low_open, high_open)(name, value)


class Shape(Kind):
    """`length` positive integers (a tuple or list), returned as a tuple.

    Args:
        length: how many integers.
        expected: the kind in words (default "LENGTH positive integers").
    """

    def __init__(self, length, expected=None):
        self.length = length
        self.expected = expected or f"{length} positive integers"

    def accepts(self, value):
        return (
            isinstance(value, (tuple, list))
            and len(value) == self.length
            and all(positive_int.accepts(v) for v in value)
        )

    def convert(self, value):
        return tuple(value)

    def __repr__(self):
        return f"Shape({self.length})"


def shape(name, value, length):
    """`value` as a tuple of `length` positive integers, else ConfigError."""
    return Shape(length)(name, value)


class Either(Kind):
    """A value one of `kinds` accepts (tried in order), or one of the strings `words`.

    Args:
        expected: the kind in words ("a positive integer or auto").
        kinds: the kinds tried in order.
        words: strings accepted as they are.
    """

    def __init__(self, expected, *kinds, words=()):
        self.expected = expected
        self.kinds = kinds
        self.words = tuple(words)

    def accepts(self, value):
        if isinstance(value, str):
            return value in self.words
        return any(k.accepts(value) for k in self.kinds)


class Choice(Kind):
    """One of `values`, compared with their type (True is not 1).

    Args:
        expected: the kind in words ("on, off or auto").
        words: the words that name the values on the command line (case-insensitive),
            as {word: value}; `parse(text)` looks one up.
    """

    def __init__(self, expected, words):
        self.expected = expected
        self.words = dict(words)

    def parse(self, text):
        """The value `text` names; KeyError if none."""
        return self.words[text.lower()]

    def accepts(self, value):
        return any(type(value) is type(v) and value == v for v in self.words.values())


class Text(Kind):
    """A non-empty string without spaces at its ends, such as a name."""

    def __init__(self, expected="a name"):
        self.expected = expected

    def accepts(self, value):
        return isinstance(value, str) and value != "" and value == value.strip()

    def received(self, value):
        return repr(value)


class Sequence(Kind):
    """A list (or tuple) of at least `min_length` values of the kind `item`, returned as a list.

    Args:
        item: the kind of each value.
        expected: the kind in words ("GPU indices such as 0,1").
        min_length: the fewest values.
    """

    def __init__(self, item, expected, min_length=1):
        self.item = item
        self.expected = expected
        self.min_length = min_length

    def accepts(self, value):
        return (
            isinstance(value, (list, tuple))
            and len(value) >= self.min_length
            and all(self.item.accepts(v) for v in value)
        )

    def convert(self, value):
        return list(value)

    def __repr__(self):
        return f"Sequence({self.item!r})"


# Every kind of value; the CLI's flag types carry one (`kerascnn.cli.flags.flag_type`).
KINDS = (Number, Shape, Either, Choice, Text, Sequence)
