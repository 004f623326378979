"""Atomic writes of text and figures: a temporary name in the same folder, then os.replace.

A reader (or a run killed half-way) never sees a half-written file. Every
file a run, an analysis or a search writes goes through here (JSON through
`kerascnn.storage.rundir.write_json`, history through `kerascnn.storage.history.write_history`).
"""

import os
import pathlib
import shutil
import tempfile

from kerascnn.faults import write_point


def temporary_prefix(path):
    """`.STEM.tmp-PID-`: the start of the temporary names of `path`, which `remove_stale` recognises."""
    return f".{pathlib.Path(path).stem}{TEMPORARY}{os.getpid()}-"


def _atomic(path, write):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        write_point(path)  # a crash or a full disk here must leave the previous file
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path, text):
    """Write `text` to `path` atomically; return the path."""

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            f.write(text)

    return _atomic(path, write)


def save_figure(fig, path, dpi=100):
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    try:
        return _atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=pathlib.Path(path).suffix[1:] or "png"))
    finally:
        plt.close(fig)


# --- folders ---------------------------------------------------------------------
#
# A folder that must appear whole (a new run directory with its config.json, an
# export version) is filled under a hidden staging name beside its final place,
# `.NAME.partial-PID`, and renamed when complete: rename(2) of a folder is atomic
# and replaces an absent or empty target. A process killed while filling leaves
# only the staging folder, which the next writer in the same place removes once
# its process is gone.

PARTIAL = ".partial-"
TEMPORARY = ".tmp-"


def staging_folder(final):
    """A fresh, empty `.NAME.partial-PID` beside `final` (stale ones of dead processes removed first)."""
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final.parent)
    staging = final.parent / f".{final.name}{PARTIAL}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def remove_stale(folder):
    """Remove what killed writers left in `folder`: staging folders and temporary files of dead processes."""
    for path in pathlib.Path(folder).glob(".*"):
        pid = _writer_pid(path.name)
        if pid is None or _alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _writer_pid(name):
    """The process id in `.NAME.partial-PID` or `.STEM.tmp-PID-...`, else None."""
    for marker in (PARTIAL, TEMPORARY):
        if marker in name:
            pid = name.rpartition(marker)[2].partition("-")[0].partition(".")[0]
            return int(pid) if pid.isdigit() else None
    return None


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
