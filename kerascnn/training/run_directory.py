"""Phase 6: the run directory: the chief's, or a worker's scratch folder.

Only the chief of a multi-worker run (and every single-process run) writes
the run directory; the other workers write the same files to a throwaway
folder, removed when the run ends. A new run's folder is created here, after
every check on the user's input has passed, with config.json written first.

A resumed run writes nothing here, unless it extends its budget
(`fit --resume RUN_DIR --epochs N`): then metrics.json is removed first (the
run is unfinished again; `publish` writes the new one) and config.json is
rewritten with the new budget and the extension. Killed between the two, the
run still resumes: its config.json then holds the old budget, which the
backup has reached, and the resumed run only tests and publishes again.
"""

import contextlib
import pathlib
import shutil
import tempfile

from kerascnn.errors import ConfigError
from kerascnn.storage import rundir


def _new_run_dir(config):
    if not config.run_dir:
        return rundir.new_run_dir(config.model)
    path = pathlib.Path(config.run_dir)
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"--run-dir {path} exists and is not empty; choose a new folder or --resume it")
    path.mkdir(parents=True, exist_ok=True)
    return path


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
        if plan.extension is not None:
            (plan.resume_dir / rundir.METRICS).unlink(missing_ok=True)
            rundir.write_json(plan.resume_dir / rundir.CONFIG, config.to_dict())
        yield config, plan.resume_dir
        return
    path = _new_run_dir(config)
    config = config.replace(run_dir=str(path))
    rundir.write_json(path / rundir.CONFIG, config.to_dict())
    yield config, path
