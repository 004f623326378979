"""Training: the phases of a run, and `fit`, which composes them (see `kerascnn.training.fit`).

The names are imported on first use (`kerascnn._lazy`), so that the phases
that need no TensorFlow (`build`, `optim`, `norm_parameters`) import on a
machine without it, for Keras' other backends. `fit` itself is
`kerascnn.fit` (or `kerascnn.training.fit.fit`): a lazy name cannot share
its name with the submodule `kerascnn.training.fit`, which Python binds on
the package when it is imported.
"""

from kerascnn._lazy import lazy_exports

_PUBLIC = {
    "RunPlan": "kerascnn.training.plan",
    "RunResult": "kerascnn.training.fit",
    "build_models": "kerascnn.training.build",
    "compile_model": "kerascnn.training.build",
    "plan_run": "kerascnn.training.plan",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
