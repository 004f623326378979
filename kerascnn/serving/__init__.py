"""Serving: SavedModel and TensorFlow Lite export, the predictor on raw images, evaluation through it.

    export       export_model / export_run: saved_models/<model>/<version>/, verified after writing
    tflite       export_tflite: saved_models/<model>/tflite/<version>/, float32, float16 or int8
    interpreter  a .tflite export through tf.lite.Interpreter
    predictor    load_predictor: an export, a .tflite export or a run directory as probabilities of uint8 images
    batch_predict  predict_files: files and folders in batches through tf.data, CSV rows
    run_loading  load_run: a run directory's config, best model and preprocessing
    evaluate     evaluate: top-1/top-5 accuracy and cross-entropy on a test split
    scoring, tta  accumulating probabilities; flips, flips with shifts and the ten patches at test time
    test_time_views  which flip-and-shift views and how they combine (no TensorFlow)
"""

from kerascnn._lazy import lazy_exports

_PUBLIC = {
    "export_model": "kerascnn.serving.export",
    "export_run": "kerascnn.serving.export",
    "export_tflite": "kerascnn.serving.tflite",
    "predict_files": "kerascnn.serving.batch_predict",
    "load_predictor": "kerascnn.serving.predictor",
    "load_run": "kerascnn.serving.run_loading",
    "evaluate": "kerascnn.serving.evaluate:evaluate",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
