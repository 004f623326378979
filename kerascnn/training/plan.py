"""Phase 1 of a run: plan it, without touching TensorFlow's state.

`plan_run(config, resume_dir)` turns what the user asked for into what the
run will do, and checks everything that can be checked before any data is
read or any process-wide setting changes:

- a resumed run reloads its config.json (finished runs are refused), and
  `epochs` above its budget extends it (`kerascnn.training.extension`);
- the model name exists, and a new run's `--run-dir` can be made (absent or
  an empty folder, under folders that are not files and can be written);
- `--weights` / `--init-from` add the weights' own model options, image size
  and normalisation (`kerascnn.weights.plan`);
- `--model-parallel` names the two devices of AlexNet's towers
  (`kerascnn.runtime.model_parallel`);
- `--precision auto` / `--jit auto` become concrete values for this machine
  (`kerascnn.runtime.hardware`), with the reasons; a resumed run keeps the
  concrete values its config.json holds.

The learning rate a run uses depends on the replica count, which only the
strategy knows: `RunPlan.optim_for(replicas)` applies `--scale-lr` to it.
"""

import dataclasses
import os
import pathlib

from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.models import check_model_name
from kerascnn.runtime import hardware
from kerascnn.runtime import model_parallel
from kerascnn.runtime.strategies import scaled_learning_rate
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history
from kerascnn.training import extension
from kerascnn.training.callbacks import backup_epoch
from kerascnn.weights import plan as weights_plan


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a run will do, decided before it starts.

    Attributes:
        config: the `RunConfig` with the weights' defaults merged and `auto`
            resolved (its `resolved` record is that of the resumed run, or empty).
        resume_dir: the run directory being continued, or None.
        extension: the record of the budget extension this resumed run
            makes (the last of `config.extensions`), or None.
        transfer: the `kerascnn.weights.plan.Plan` of --weights / --init-from.
        placement: the `ModelParallel` of --model-parallel, or None.
        auto_reasons: {"precision": why, "jit": why} for settings that were `auto`.
    """

    config: RunConfig
    resume_dir: pathlib.Path = None
    transfer: weights_plan.Plan = dataclasses.field(default_factory=weights_plan.Plan)
    placement: model_parallel.ModelParallel = None
    auto_reasons: dict = dataclasses.field(default_factory=dict)
    extension: dict = None

    @property
    def resumed(self):
        return self.resume_dir is not None

    def optim_for(self, replicas):
        """The `OptimConfig` the run trains with: `--scale-lr linear` multiplies lr by `replicas`."""
        optim = self.config.optim
        return dataclasses.replace(optim, lr=scaled_learning_rate(optim.lr, replicas, self.config.scale_lr))


def load_for_resume(run_dir, epochs=None):
    """(run directory, its RunConfig, the extension record or None) of a run to continue.

    `epochs` (None: the saved budget) above the saved budget extends the run,
    finished or not; ConfigError for a finished run without a larger
    `epochs`, a smaller `epochs`, or a finished run without the training
    state (backup/) to continue from.
    """
    run_dir = rundir.require_run_dir(run_dir)
    config = RunConfig.read(run_dir)
    finished = (run_dir / rundir.METRICS).exists()
    # Everything the resumed run reads back is checked before anything is written: its backup (the
    # epoch it continues from, the weights) here, its history (a finished run has one) before returning.
    backed_up = backup_epoch(run_dir / rundir.BACKUP)
    if epochs is None or epochs == config.epochs:
        if finished:
            raise ConfigError(
                f"run {run_dir} already finished its {config.epochs} epochs (metrics.json exists); "
                f"give --epochs N above {config.epochs} to train it further, or start a new run "
                f"with its settings: fit --config {run_dir}"
            )
        read_history(run_dir / rundir.HISTORY, missing_ok=True)
        return run_dir, config, None
    if epochs < config.epochs:
        raise ConfigError(
            f"--epochs {epochs} is below the budget of run {run_dir} ({config.epochs} epochs): a run can be "
            "extended, not shortened; drop --epochs, or start a new run with fit --config "
            f"{run_dir} --epochs {epochs}"
        )
    if finished and backed_up == 0:
        raise ConfigError(
            f"run {run_dir} finished without keeping its training state ({rundir.BACKUP}/, kept by runs since "
            f"extensions exist), so it cannot be extended; start a new run from its weights: "
            f"fit {config.model} --weights {run_dir}"
        )
    read_history(run_dir / rundir.HISTORY, missing_ok=not finished)
    previous = rundir.read_metrics(run_dir) if finished else None
    config = extension.extended(config, epochs, previous)
    return run_dir, config, config.extensions[-1]


def check_new_run_dir(path):
    """ConfigError unless `path` can become a new run's folder, checked before any work.

    It must be absent or an empty folder, and the nearest folder above it
    that exists must be a folder this process can write in (not a file).
    """
    path = pathlib.Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"--run-dir {path} exists and is not empty; choose a new folder or --resume it")
    for parent in path.absolute().parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ConfigError(f"--run-dir {path}: {parent} is a file, not a folder; choose another --run-dir")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"--run-dir {path}: cannot write in {parent}; choose another --run-dir")
            return


def plan_run(config=None, resume_dir=None, epochs=None):
    """The `RunPlan` of `config`, or of the run in `resume_dir` (pass one of them).

    With `resume_dir`, `epochs` above the run's budget extends it.
    """
    ext = None
    if resume_dir is not None:
        resume_dir, config, ext = load_for_resume(resume_dir, epochs)
    elif epochs is not None:
        raise ConfigError("epochs= extends a resumed run; set a new run's epochs in its RunConfig")
    if config is None:
        raise ConfigError("give a RunConfig to train or a run directory to resume")
    check_model_name(config.model)
    if resume_dir is None and config.run_dir:
        check_new_run_dir(config.run_dir)
    config, transfer = weights_plan.resolve(config, resumed=resume_dir is not None)
    config, placement = model_parallel.plan(config)
    config, auto_reasons = hardware.resolve(config)
    return RunPlan(config, resume_dir, transfer, placement, auto_reasons, ext)
