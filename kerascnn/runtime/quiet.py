"""Import TensorFlow (and run TensorFlow Lite) without their noise on the user's terminal.

TF_CPP_MIN_LOG_LEVEL only filters messages logged after absl is initialised;
the CUDA probes at import time ("Could not find cuda drivers...") are written
straight to file descriptor 2 before that, so stderr is pointed at /dev/null
for the duration of the import and restored afterwards.
"""

import contextlib
import os
import sys
import tempfile


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


class CapturedOutput:
    """What a `captured_output()` block wrote to file descriptors 1 and 2 (`text`, after the block)."""

    text = ""


@contextlib.contextmanager
def captured_output():
    """Point file descriptors 1 and 2 at a temporary file for the block; yield a `CapturedOutput`.

    TensorFlow Lite's converter and interpreter write from C++ straight to
    the descriptors ("fully_quantize: 0, ...", "INFO: Created TensorFlow Lite
    XNNPACK delegate"), past Python's `sys.stdout` and the log levels; a
    command whose output is one result line or one error line keeps it so,
    and an error can still quote what the converter said.
    """
    captured = CapturedOutput()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")
