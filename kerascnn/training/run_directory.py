"""Phase 6: the run directory: the chief's, or a worker's scratch folder.

Only the chief of a multi-worker run (and every single-process run) writes
the run directory; the other workers write the same files to a throwaway
folder, removed when the run ends. A new run's folder is created here, after
every check on the user's input has passed, whole: with its config.json, or not at all.

A resumed run writes nothing here, unless it extends its budget
(`fit --resume RUN_DIR --epochs N`): then metrics.json is removed first (the
run is unfinished again; `publish` writes the new one) and config.json is
rewritten with the new budget and the extension. Killed between the two, the
run still resumes: its config.json then holds the old budget, which the
backup has reached, and the resumed run only tests and publishes again.
"""

import contextlib
import errno
import os
import pathlib
import shutil
import tempfile

from kerascnn.errors import ConfigError
from kerascnn import faults
from kerascnn.storage import rundir
from kerascnn.storage.atomic import remove_stale, staging_folder


def _new_run_dir(config):
    """Create the run's folder with its config.json inside, atomically; return its path.

    The folder is filled under a staging name and renamed into place, so a run
    killed while it is being created leaves no folder that `--run-dir` would
    refuse as not empty and `--resume` would refuse as holding no config.json.
    """
    if config.run_dir:
        path = pathlib.Path(config.run_dir)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(f"--run-dir {path} exists and is not empty; choose a new folder or --resume it")
        candidates = [path]
    else:
        candidates = rundir.run_dir_names(config.model)
    for path in candidates:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            continue
        staging = staging_folder(path)
        try:
            rundir.write_json(staging / rundir.CONFIG, config.replace(run_dir=str(path)).to_dict())
            os.rename(staging, path)  # replaces an absent or empty folder, never a full one
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and not config.run_dir:
                continue  # another run took this name in the meantime
            raise
        faults.point("run_dir.created")
        return path
    raise RuntimeError(f"could not create a run directory for {config.model}")


@contextlib.contextmanager
def run_directory(config, plan, runtime):
    """Yield (config with `run_dir` set, run directory); a worker's scratch folder is removed on exit."""
    if not runtime.chief:
        scratch = pathlib.Path(tempfile.mkdtemp(prefix="kerascnn-worker-"))
        try:
            yield config, scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if plan.resumed:
        remove_stale(plan.resume_dir)  # temporary files of a process killed while writing
        if plan.extension is not None:
            (plan.resume_dir / rundir.METRICS).unlink(missing_ok=True)
            rundir.write_json(plan.resume_dir / rundir.CONFIG, config.to_dict())
        yield config, plan.resume_dir
        return
    path = _new_run_dir(config)
    yield config.replace(run_dir=str(path)), path
