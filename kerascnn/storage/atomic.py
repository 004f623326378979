"""Atomic writes of text and figures: a temporary name in the same folder, then os.replace.

A reader (or a run killed half-way) never sees a half-written file. Every
file a run, an analysis or a search writes goes through here (JSON through
`kerascnn.storage.rundir.write_json`, history through `kerascnn.storage.history.write_history`).
"""

import os
import pathlib
import tempfile


def _atomic(path, write):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
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
