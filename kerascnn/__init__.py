"""kerascnn: the classic convolutional networks in Keras 3.

    import kerascnn

    config = kerascnn.RunConfig.from_flags("alexnet_cifar", dataset="synthetic", epochs=2)
    result = kerascnn.fit(config)                    # a RunResult: run_dir, metrics, model
    kerascnn.evaluate(result.run_dir)                # accuracy, top-5, cross-entropy on the test split
    export = kerascnn.export_model(result.run_dir)   # a SavedModel serving raw uint8 images
    kerascnn.load_predictor(export).probabilities(images)

Every public name is imported lazily (`kerascnn._lazy`), so `import kerascnn`
and the CLI's `--help` do not pay for TensorFlow until a name is used.
"""

from kerascnn._lazy import lazy_exports
from kerascnn.runtime.onednn import prefer_onednn

prefer_onednn()  # before any kerascnn module imports TensorFlow, which reads it once

__version__ = "0.1.0"

_PUBLIC = {
    # models
    "create_model": "kerascnn.models",
    "list_models": "kerascnn.models",
    "register_model": "kerascnn.registry",
    "model_description": "kerascnn.models",
    # configuration and the run record
    "RunConfig": "kerascnn.config",
    "DataConfig": "kerascnn.config",
    "OptimConfig": "kerascnn.config",
    "RunRecord": "kerascnn.record",
    "UserError": "kerascnn.errors",
    # the jobs
    "fit": "kerascnn.training.fit:fit",
    "RunResult": "kerascnn.training.publish",
    "evaluate": "kerascnn.serving.evaluate:evaluate",
    "export_model": "kerascnn.serving.export",
    "load_predictor": "kerascnn.serving.predictor",
    # subpackages
    "analysis": "kerascnn.analysis",
    "cli": "kerascnn.cli",
    "data": "kerascnn.data",
    "layers": "kerascnn.layers",
    "models": "kerascnn.models",
    "runtime": "kerascnn.runtime",
    "serving": "kerascnn.serving",
    "storage": "kerascnn.storage",
    "training": "kerascnn.training",
    "weights": "kerascnn.weights",
    # KerasTuner searches: the top-level `tuning` package (the product card keeps it there)
    "tuning": "tuning",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
