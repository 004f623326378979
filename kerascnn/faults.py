"""Named fault points: the places where the reliability tests kill the process or fail a write.

A crash or a full disk can strike between any two instructions; the ones
that matter for what is left on disk are the moments just before and after
a file is published (a temporary file written, not yet renamed), a phase
boundary (data read, an epoch trained, validated, checkpointed, tested),
and the middle of a long write (an export). Each such moment calls
`point(name)`. Outside the tests nothing is configured and `point` is one
dictionary lookup.

The environment variable `KERASCNN_FAULT` arms one point for one process:

    KERASCNN_FAULT="kill@train.batch:7"       SIGKILL at the 7th time `train.batch` is reached
    KERASCNN_FAULT="enospc@write:history.csv"  raise OSError(ENOSPC) the first time (`:1` implied)
    KERASCNN_FAULT="eio@checkpoint.best:2"     raise OSError(EIO) the second time

`kill` is the crash nobody can catch (power loss, the OOM killer, a session
that ends); `enospc` and `eio` are the write failures of a full or failing
disk, raised exactly where the real write would have failed. A point is
named after the phase (`data.opened`, `train.batch`, `validation.batch`,
`epoch.end`, `evaluation`, ...) or after the file being written
(`write:<file name>`, `checkpoint.best`, `export.version`). `POINTS` lists
them for the tests that walk every one.
"""

import collections
import errno
import os
import signal

ENV = "KERASCNN_FAULT"

# Every point the product calls, in the order a run reaches them
# (the interruption battery samples from this list).
POINTS = (
    "data.opened",            # the source is open, the pipelines not yet built
    "write:config.json",      # a new run's config.json written to its temporary name
    "run_dir.created",        # the run directory and its config.json are in place
    "train.batch",            # after a training step
    "validation.batch",       # after a validation step at an epoch's end
    "write:history.csv",      # history.csv written to its temporary name, not yet renamed
    "backup.before",          # the epoch's backup not yet written
    "write:latest.weights.h5",       # the backup's weights written to their temporary name
    "write:training_metadata.json",  # the backup's epoch number written to its temporary name
    "backup.after",           # the epoch's backup written
    "checkpoint.best",        # best.keras written to its temporary name, not yet renamed
    "epoch.end",              # every callback of the epoch has run
    "evaluation",             # the best checkpoint loaded, the test split not yet read
    "write:metrics.json",     # metrics.json (the run's last file) written, not yet renamed
    "export.write",           # the SavedModel written into the export's temporary folder
    "export.version",         # the export verified, not yet renamed to its version
    "tune.trial",             # a search's trial begins
)

_ERRORS = {"enospc": errno.ENOSPC, "eio": errno.EIO}
_hits = collections.Counter()


def _armed():
    spec = os.environ.get(ENV)
    if not spec:
        return None
    action, _, rest = spec.partition("@")
    name, _, count = rest.rpartition(":") if rest.rpartition(":")[2].isdigit() else (rest, "", "1")
    return action, name, int(count)


def point(name):
    """Reach the fault point `name`: nothing happens unless `KERASCNN_FAULT` arms it."""
    armed = _armed()
    if armed is None or armed[1] != name:
        return
    action, _, count = armed
    _hits[name] += 1
    if _hits[name] != count:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action in _ERRORS:
        code = _ERRORS[action]
        raise OSError(code, os.strerror(code), name.partition(":")[2] or name)
    raise ValueError(f"{ENV}={os.environ[ENV]!r}: the action must be kill, enospc or eio")


def write_point(path):
    """The fault point of a file written to a temporary name: `write:<file name>`."""
    point(f"write:{os.path.basename(path)}")
