"""kerascnn: the classic convolutional networks in Keras 3.

The public API is imported lazily so that `import kerascnn` (and the CLI's
`--help`) does not pay for importing TensorFlow until a name is used.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "create_model": "kerascnn.registry",
    "list_models": "kerascnn.registry",
    "register_model": "kerascnn.registry",
    "model_description": "kerascnn.registry",
    "RunConfig": "kerascnn.config",
    "fit": "kerascnn.training.fit",
    "export_model": "kerascnn.serving.export",
    "load_predictor": "kerascnn.serving.predictor",
    "UserError": "kerascnn.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'kerascnn' has no attribute {name!r}")
