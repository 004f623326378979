"""Import TensorFlow without its start-up noise on the user's terminal.

TF_CPP_MIN_LOG_LEVEL only filters messages logged after absl is initialised;
the CUDA probes at import time ("Could not find cuda drivers...") are written
straight to file descriptor 2 before that, so stderr is pointed at /dev/null
for the duration of the import and restored afterwards.
"""

import os
import sys


def import_tensorflow_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    import absl.logging
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    absl.logging.set_verbosity(absl.logging.ERROR)
