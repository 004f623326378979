"""Training: the phases of a run, and `fit`, which composes them (see `kerascnn.training.fit`)."""

from kerascnn.training.build import build_models, compile_model
from kerascnn.training.fit import RunResult, fit
from kerascnn.training.plan import RunPlan, plan_run

__all__ = ["RunPlan", "RunResult", "build_models", "compile_model", "fit", "plan_run"]
