"""Training memory on one accelerator, ESTIMATED from a model's sizes: how large a batch fits.

No accelerator is run: the estimate is arithmetic on the layer profile
(`kerascnn.analysis.profile`). For a batch of b images,

    M(b) = F + b x m
    F    = 4 B x (P + T x (1 + s)) + R      fixed bytes
    m    = 2 x A                           bytes per image

    P  all parameters, stored as float32 (also under mixed precision, whose
       variables stay float32): 4 B each;
    T  the trainable ones, each with a float32 gradient and `s` float32
       optimizer slots (`optimizer_slots`); T is P less the batch-norm
       moving statistics when nothing is frozen;
    s  slots per weight: SGD with momentum 1 (the velocity), plain SGD 0,
       Adam and AdamW 2 (first and second moments), RMSprop 2 (the mean
       square, and the step tensor its fused kernel writes into: kerascnn
       builds RMSprop without momentum or centring,
       `kerascnn.training.fused_updates`), plus 1 with --ema (Keras keeps the
       average beside the weights) or --lookahead (its slow weights,
       `kerascnn.training.lookahead`, which copy the batch-norm statistics
       too: P - T more, left out here);
    A  activation bytes of one image's forward pass at the compute dtype
       (`ModelProfile.activation_bytes`: every tensor the forward pass
       allocates, once, the input included; 2 B under mixed_bfloat16 and
       mixed_float16, 4 B in float32);
    2  backpropagation keeps the forward activations until their gradients
       are computed and, at its peak, holds gradients of activations of about
       the same size: twice the forward pass;
    R  a fixed reserve, `RESERVE_BYTES` = 1 GiB, for the CUDA context and the
       cuBLAS/cuDNN workspaces.

The largest batch that fits in G bytes is floor((G - F) / m), 0 when F >= G.

What it leaves out, so read it as a guide to the order of magnitude, not a
promise: cuDNN's choice of convolution algorithm (some take workspaces far
above the reserve, others none), the allocator's rounding and fragmentation
(TensorFlow's BFC allocator), XLA's fusion and rematerialisation (less
memory) and its temporary buffers (more), the bfloat16/float16 copies of the
weights that mixed precision casts each step (2 B x P), training-only
tensors the profile counts as views (dropout masks and outputs), ops'
scratch buffers, and the input pipeline's prefetched batches.
"""

import dataclasses

from kerascnn.analysis.profile import profile_model

GIB = 2 ** 30
MIB = 2 ** 20
RESERVE_BYTES = GIB
WEIGHT_BYTES = 4  # float32 variables, gradients and optimizer slots
# Accelerator sizes the report reads the estimate at, as cards are sold (8 GB, ..., 80 GB), taken as GiB.
GPU_GIB = (8, 16, 24, 40, 80)
# The compute dtype of each `--precision` (the variables stay float32).
COMPUTE_DTYPE = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def optimizer_slots(optimizer, momentum=0.0, ema=None, lookahead=None):
    """Float32 tensors the optimizer keeps per trainable weight, as `training.optim.build_optimizer` builds it."""
    if optimizer == "sgd":
        slots = 1 if momentum else 0  # Keras' SGD makes its velocities only for a non-zero momentum
    elif optimizer in ("adam", "adamw"):
        slots = 2
    elif optimizer == "rmsprop":
        slots = 2  # the mean square, and the fused kernel's step tensor (no momentum slot to write into)
    else:
        raise ValueError(f"optimizer must be one of sgd, adam, adamw, rmsprop. Received: optimizer={optimizer!r}")
    # --ema's average and --lookahead's slow weights: one more float32 copy of each weight.
    return slots + (1 if ema is not None else 0) + (1 if lookahead is not None else 0)


def compute_dtype(precision):
    """The activations' dtype under `precision` (float32, mixed_float16, mixed_bfloat16)."""
    if precision not in COMPUTE_DTYPE:
        raise ValueError(f"precision must be one of {', '.join(COMPUTE_DTYPE)}. Received: precision={precision!r}")
    return COMPUTE_DTYPE[precision]


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """The estimate of one model's training memory (formula in the module docstring)."""

    model: str
    params: int
    trainable_params: int
    slots: int
    dtype: str
    activation_bytes: int
    reserve_bytes: int = RESERVE_BYTES

    @property
    def state_bytes(self):
        """4 B x (P + T x (1 + s)): weights, gradients and optimizer slots."""
        return WEIGHT_BYTES * (self.params + self.trainable_params * (1 + self.slots))

    @property
    def fixed_bytes(self):
        return self.state_bytes + self.reserve_bytes

    @property
    def per_image_bytes(self):
        return 2 * self.activation_bytes

    def bytes(self, batch_size):
        """M(b), in bytes."""
        return self.fixed_bytes + batch_size * self.per_image_bytes

    def max_batch(self, memory_bytes):
        """The largest b with M(b) <= `memory_bytes` (0 when not even the fixed part fits)."""
        if memory_bytes < self.fixed_bytes:
            return 0
        return (memory_bytes - self.fixed_bytes) // self.per_image_bytes


def power_of_two_at_most(n):
    """The largest power of two <= n (0 for n < 1): the batch sizes people try."""
    return 0 if n < 1 else 1 << (int(n).bit_length() - 1)


def estimate_training_memory(model, optimizer="sgd", momentum=0.9, ema=None, dtype="float32",
                             reserve_bytes=RESERVE_BYTES, lookahead=None):
    """`MemoryEstimate` of training `model` (Functional, fixed input shape) with `optimizer` at `dtype`."""
    profile = profile_model(model, dtype=dtype)
    return MemoryEstimate(
        model=profile.model,
        params=profile.params,
        trainable_params=profile.trainable_params,
        slots=optimizer_slots(optimizer, momentum, ema, lookahead),
        dtype=dtype,
        activation_bytes=profile.activation_bytes,
        reserve_bytes=reserve_bytes,
    )
