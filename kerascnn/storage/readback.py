"""Reading back the files kerascnn wrote, each failure one `DataError` line.

Every file the product reads back (a run's config.json, history.csv,
metrics.json, best.keras and backup/, an export's kerascnn.json and
labels.txt, a search's trial.json, a study's study.json, study.toml and
.failed notes, results CSVs, imported weights) goes through one of these:

    read_bytes(path, what)                    the bytes
    read_text(path, what)                     UTF-8 text
    read_json(path, what, expect, required)   a JSON object (or list) with the keys and types asked for
    read_csv(path, what, columns, numeric)    (header, rows) of a CSV with a header line
    read_lines(path, what)                    the lines of a text file, one item per line
    read_toml(path, what)                     a TOML table
    load_keras_model(path, what)              a .keras model file

Each turns a file that is missing, a folder, unreadable (permissions),
empty, truncated, not text, not JSON/CSV/TOML, of the wrong JSON type or
missing keys (or with values of the wrong type) into one line:

    "<path> <what is wrong>; <what>"

where `what` (the caller's) says what the file is and what to do, e.g.
"runs/x/history.csv is truncated (row 3 has 2 of 7 columns); the run's
history is damaged: delete the run, or start again with `fit --config runs/x`".

Where a missing file is normal (a run not yet started has no history.csv,
a trial being written has no trial.json yet), the caller says so with
`missing_ok=True` and gets None back; everything else is still refused.
Files kerascnn writes end with a newline (`kerascnn.storage.atomic`), so a
CSV or line file whose last line has none was cut short.
"""

import csv
import io
import json
import math
import numbers
import pathlib
import tomllib

from kerascnn.errors import DataError

DAMAGED = "it was not written by kerascnn, or it was damaged after"


class ReadBackError(DataError):
    """A file that cannot be read back; `kind` says how: "missing", "folder", "unreadable", "empty",
    "truncated", "format" (not text, JSON, CSV, ...) or "content" (the wrong type or keys)."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


def _open(path, mode="rb"):
    """The one low-level open of this module (the tests make it refuse a path, as for a user without rights)."""
    return open(path, mode)


def _fail(path, problem, what, kind="content"):
    raise ReadBackError(f"{path} {problem}; {what or DAMAGED}", kind)


def _check_file(path, what, missing_ok):
    """None when the file is missing and that is fine; raise for a missing file or a folder."""
    path = pathlib.Path(path)
    if path.is_dir():
        _fail(path, "is a folder, not a file", what, "folder")
    if not path.exists():
        if missing_ok:
            return None
        _fail(path, "is missing", what, "missing")
    return path


def read_bytes(path, what=None, missing_ok=False, allow_empty=False, size=-1):
    """The bytes of `path` (None when it is missing and `missing_ok`); DataError when they cannot be read.

    `size` reads only the first bytes (a file's signature), -1 the whole file.
    """
    path = pathlib.Path(path)
    if _check_file(path, what, missing_ok) is None:
        return None
    try:
        with _open(path, "rb") as f:
            data = f.read(size)
    except FileNotFoundError:  # removed between the check and the read
        if missing_ok:
            return None
        _fail(path, "is missing", what, "missing")
    except IsADirectoryError:
        _fail(path, "is a folder, not a file", what, "folder")
    except OSError as e:
        _fail(path, f"cannot be read ({e.strerror or e})", what, "unreadable")
    if not data and not allow_empty:
        _fail(path, "is empty", what, "empty")
    return data


def read_text(path, what=None, missing_ok=False, allow_empty=False):
    """The UTF-8 text of `path` (None when missing and `missing_ok`); DataError for bytes that are not text."""
    data = read_bytes(path, what, missing_ok, allow_empty)
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(path, f"is not text (byte {e.start} is not UTF-8)", what, "format")
    if "\x00" in text:
        _fail(path, f"is not text (a NUL byte at {text.index(chr(0))})", what, "format")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


# --- JSON ----------------------------------------------------------------------


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true or false",
               numbers.Real: "a number", numbers.Integral: "an integer", type(None): "null"}


def _kind(value):
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, numbers.Integral):
        return "an integer"
    if isinstance(value, numbers.Real):
        return "a number"
    return "null"


def is_json(value, kind):
    """Whether the JSON `value` is of `kind` (a type, or a tuple of them); numbers never booleans."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is None or k is type(None):
            if value is None:
                return True
        elif k in (numbers.Real, float, int, numbers.Integral):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            if k in (int, numbers.Integral) and not (isinstance(value, int) or float(value).is_integer()):
                continue
            if isinstance(value, float) and not math.isfinite(value) and k not in (float,):
                continue
            return True
        elif isinstance(value, k):
            return True
    return False


def _kind_name(kind):
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = []
    for k in kinds:
        k = type(None) if k is None else k
        k = {float: numbers.Real, int: numbers.Integral}.get(k, k)
        names.append(_JSON_TYPES.get(k, getattr(k, "__name__", str(k))))
    return " or ".join(names)


def check_keys(path, obj, required=(), what=None, optional=None, where=""):
    """Raise DataError unless the object `obj` has every key of `required`, of the right types.

    `required` is a sequence of key names (present, any value) or a mapping
    {name: type or tuple of types} (present with a value of that JSON type:
    dict, list, str, bool, int (an integral number), float (any number),
    None); `optional` maps keys that may be absent to the types they must
    have when present.
    """
    items = required.items() if isinstance(required, dict) else ((k, object) for k in required)
    for key, kind in [*items, *(optional or {}).items()]:
        label = f'"{where}{key}"'
        if key not in obj:
            if optional and key in optional and key not in required:
                continue
            _fail(path, f"has no {label}", what)
        if kind is not object and not is_json(obj[key], kind):
            _fail(path, f"has {label} as {_kind(obj[key])}, not {_kind_name(kind)}", what)


_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


def _cut_short(text, error):
    """Whether JSON that fails with `error` reads as a whole document cut off (rather than one that is not JSON)."""
    rest = text[error.pos:].rstrip()
    return (not rest or error.msg.startswith("Unterminated string")
            or any(literal.startswith(rest) for literal in _LITERALS)
            or all(c in "0123456789+-.eE" for c in rest))


def parse_json(path, text, what=None):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if _cut_short(text, e):
            _fail(path, f"is truncated (its JSON stops at byte {len(text.encode())})", what, "truncated")
        _fail(path, f"is not JSON ({e.msg} at line {e.lineno}, column {e.colno})", what, "format")
    except RecursionError:
        _fail(path, "is not JSON (nested too deeply)", what, "format")


def read_json_text(name, text, what=None, expect=dict, required=(), optional=None):
    """`read_json` of text already read (an entry of an archive, named `name` in the message)."""
    value = parse_json(name, text, what)
    if expect is not None and not is_json(value, expect):
        _fail(name, f"holds {_kind(value)}, not {_kind_name(expect)}", what)
    if (required or optional) and isinstance(value, dict):
        check_keys(name, value, required, what, optional)
    return value


def read_json(path, what=None, expect=dict, required=(), optional=None, missing_ok=False):
    """The JSON value in `path`, of type `expect`, with the keys of `required` and `optional` (`check_keys`).

    None when the file is missing and `missing_ok`.
    """
    text = read_text(path, what, missing_ok)
    if text is None:
        return None
    return read_json_text(path, text, what, expect, required, optional)


# --- CSV and lines ------------------------------------------------------------------


def _complete(path, text, what):
    if not text.endswith("\n"):
        _fail(path, "is truncated (its last line stops before the end of the line)", what, "truncated")


def read_csv(path, what=None, columns=(), numeric=(), missing_ok=False, min_columns=1):
    """(header, rows) of the CSV `path`: every row as long as the header, `columns` in the header.

    `numeric` names the columns whose non-empty cells must be numbers: a
    sequence of names, `"*"` for every column or `"rest"` for every column
    after the first. None when the file is missing and `missing_ok`.
    """
    text = read_text(path, what, missing_ok)
    if text is None:
        return None
    _complete(path, text, what)
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        _fail(path, f"is not CSV ({e})", what, "format")
    if not lines or not lines[0]:
        _fail(path, "has no header line", what)
    header, rows = lines[0], lines[1:]
    if len(header) < min_columns:
        _fail(path, f"has {len(header)} columns, not at least {min_columns}", what)
    missing = [c for c in columns if c not in header]
    if missing:
        _fail(path, f"has no column {', '.join(missing)} (its header is {','.join(header)[:80]!r})", what)
    if numeric == "*":
        numeric = header
    elif numeric == "rest":
        numeric = header[1:]
    check = [(i, name) for i, name in enumerate(header) if name in set(numeric)]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            _fail(path, f"is damaged (line {number} has {len(row)} of its {len(header)} columns)", what)
        for i, name in check:
            cell = row[i]
            if cell == "":
                continue
            try:
                float(cell)
            except ValueError:
                _fail(path, f"is damaged (line {number}: {name} is {cell[:20]!r}, not a number)", what)
    return header, rows


def read_lines(path, what=None, missing_ok=False):
    """The non-empty lines of a text file, each stripped of its newline; None when missing and `missing_ok`."""
    text = read_text(path, what, missing_ok)
    if text is None:
        return None
    _complete(path, text, what)
    lines = text.split("\n")[:-1]
    if any(not line.strip() for line in lines):
        _fail(path, f"has an empty line (line {[bool(line.strip()) for line in lines].index(False) + 1})", what)
    return lines


# --- TOML -----------------------------------------------------------------------


def read_toml(path, what=None, missing_ok=False):
    """The TOML table in `path`; None when missing and `missing_ok`."""
    text = read_text(path, what, missing_ok)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        _fail(path, f"is not valid TOML ({e})", what, "format")


# --- HDF5 and Keras ----------------------------------------------------------------


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_hdf5(path, what=None):
    """DataError unless `path` is a whole HDF5 file (Keras weights: a run's backup, a trial's checkpoint)."""
    import h5py

    if read_bytes(path, what, size=len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:  # missing, a folder, unreadable, empty
        _fail(path, "is not an HDF5 weights file", what, "format")
    try:
        with h5py.File(path, "r") as f:
            f.visit(lambda name: None)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        _fail(path, f"is damaged ({' '.join(str(e).split())[:120]})", what)


# --- Keras ----------------------------------------------------------------------


def load_keras_model(path, what=None, compile=False):
    """`keras.saving.load_model(path)`, with a file that is not a whole Keras model as one DataError line.

    A `.keras` file is a zip archive (config.json, model.weights.h5); a
    missing, empty, truncated or foreign file, or one whose weights do not
    fit its architecture, is refused here rather than as a traceback of
    Keras' loader. The caller imports `kerascnn.layers` first when the model
    may hold its custom layers (LRN).
    """
    import zipfile

    import keras

    path = pathlib.Path(path)
    data = read_bytes(path, what)  # missing, a folder, unreadable, empty
    if not zipfile.is_zipfile(io.BytesIO(data)):
        problem = "is truncated" if data[:4] == b"PK\x03\x04" else "is not a Keras model file"
        _fail(path, f"{problem} (not a whole .keras archive)", what, "format")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                _fail(path, "is not a Keras model file (no config.json inside)", what, "format")
            broken = archive.testzip()
            if broken is not None:
                _fail(path, f"is damaged ({broken} inside fails its checksum)", what)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        _fail(path, f"is damaged (not a whole .keras archive: {e})", what)
    try:
        return keras.saving.load_model(path, compile=compile)
    except DataError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError, EOFError,
            zipfile.BadZipFile, json.JSONDecodeError) as e:
        detail = " ".join(str(e).split())[:160]
        _fail(path, f"cannot be loaded as a Keras model ({type(e).__name__}: {detail})", what)
