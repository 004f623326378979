"""A crash at a chosen moment, for the resume tests (test helper)."""

import keras


class StopAfter(keras.callbacks.Callback):
    """Simulates a crash (Ctrl-C) at the end of epoch `epoch` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt
