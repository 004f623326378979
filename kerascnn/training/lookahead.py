"""Lookahead (`--lookahead K`): every K steps the weights are pulled back to a slow average, which training continues from.

Zhang, Lucas, Hinton & Ba (2019), "Lookahead Optimizer: k steps forward,
1 step back": the optimizer takes K steps on the fast weights w, then the
slow weights move part of the way towards them and training goes on from
there,

    slow <- d * slow + (1 - d) * w,    w <- slow        (every K steps).

Unlike `--ema` (`kerascnn.training.averaging`), whose average only watches
training, this acts on it: the optimizer steps on from the averaged point.
The decay d follows airbench's schedule (Jordan 2024, airbench94.py):

    d_t = 0.95^K * (t / T)^3        (t: optimizer steps so far, T: the run's)

so it is 0 at the start (plain training: early weights move far and are not
worth averaging), 0.125 x 0.95^K half-way and 0.95^K at the end, a memory of
about 20 steps, as an average of 0.95 per step would have. airbench applies it
every 5 steps and to every floating-point tensor of the network, batch-norm
statistics included; so does this, and training ends on the slow weights.

Two additions make a run's epoch ends agree with each other: the weights are
also synchronised when an epoch ends and before validation (then w = slow),
so validation, the per-epoch test, best.keras, the backup and the export all
see the weights training continues from, and a resumed run, whose weights come
from the backup, starts with slow = w exactly as the interrupted one had them.
The optimizer's momentum is not touched (airbench's neither).

The slow weights are one more copy of the network in the device's memory.
"""

import keras

# airbench's per-step decay: its 0.95**5 at every 5th step is 0.95 a step.
DECAY_PER_STEP = 0.95


def lookahead_decay(step, total_steps, every):
    """airbench's d_t = 0.95^K (t / T)^3, t capped at T.

    T is the run's steps over all its epochs; an extended run's T is its new
    total (`fit` passes `config.epochs`), so its decay falls back when the
    extension starts and rises again with the extension's new one-cycle.
    """
    fraction = min(step / total_steps, 1.0) if total_steps else 1.0
    return DECAY_PER_STEP**every * fraction**3


class Lookahead(keras.callbacks.Callback):
    """Every `every` optimizer steps (and at epoch ends and before validation), w and the slow weights meet.

    Args:
        every: K, the steps between synchronisations.
        total_steps: T of the decay's schedule, the run's steps over all its epochs.
    """

    def __init__(self, every, total_steps):
        super().__init__()
        self.every = int(every)
        self.total_steps = int(total_steps)
        self._slow = None
        self._step = 0
        self._synced_at = None

    def _variables(self):
        # Weights and batch-norm statistics; not the dropout layers' integer seed states.
        return [v for v in self.model.weights if "float" in str(v.dtype)]

    def on_train_begin(self, logs=None):
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self._slow = [keras.ops.copy(v.value) for v in self._variables()]
        self._synced_at = self._step

    def synchronise(self, decay=None):
        """slow <- d slow + (1 - d) w, then w <- slow (d: the schedule's at this step unless given)."""
        if self._slow is None or self._synced_at == self._step:
            return
        d = lookahead_decay(self._step, self.total_steps, self.every) if decay is None else decay
        ops = keras.ops
        for i, var in enumerate(self._variables()):
            slow = ops.add(ops.multiply(ops.cast(d, var.dtype), self._slow[i]), ops.multiply(ops.cast(1.0 - d, var.dtype), var.value))
            var.assign(slow)
            self._slow[i] = slow
        self._synced_at = self._step

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every == 0:
            self.synchronise()

    def on_test_begin(self, logs=None):
        self.synchronise()

    def on_epoch_end(self, epoch, logs=None):
        self.synchronise()

    def on_train_end(self, logs=None):
        # airbench's last call, decay 1: training ends on the slow weights.
        self.synchronise(decay=1.0)
