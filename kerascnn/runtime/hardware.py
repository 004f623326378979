"""What `--precision auto` and `--jit auto` resolve to on this machine, and why.

The decision is a pure function of a small description of the hardware
(`Hardware`: GPU compute capabilities, CPU feature flags), so it can be
tested with made-up machines; `describe()` reads the real one. `resolve`
turns the `auto` of a `RunConfig` into concrete values before the run
starts: `config.json` records the concrete precision and XLA setting (and
the reasons, under `resolved.auto`), and `fit --resume` reuses them as
saved, whatever machine it resumes on.

The rules, with the measurements behind them in `benchmarks/NOTES.md`
(`benchmarks/throughput.py`, batch 128, 32x32):

- GPU with tensor cores, compute capability 8.0 or newer (A100, H100, RTX
  30xx/40xx): mixed_bfloat16. Tensor cores run bfloat16 as fast as float16
  there, and bfloat16 keeps float32's exponent range, so no loss scaling
  and no float16 overflow.
- GPU with compute capability 7.x (V100, T4, RTX 20xx): mixed_float16, the
  only fast tensor-core type they have (Keras adds dynamic loss scaling).
- Older GPUs and every other case: float32.
- CPU with AMX (Sapphire Rapids and newer: `amx_bf16`): mixed_bfloat16;
  oneDNN runs bfloat16 convolutions and matrix products on the AMX tiles,
  several times the float32 rate.
- CPU with AVX512-BF16 but no AMX (AMD Zen 4 and Zen 5, Cooper Lake):
  mixed_bfloat16. Measured on a 2-thread AMD EPYC Zen 4 (NOTES.md): the
  bfloat16 matmul peak is 1.75-1.8x float32's, training 1.1-1.55x (1.35-1.5x
  on a quiet host) and inference about 1.7x faster for alexnet_cifar,
  vgg16_bn and resnet18 (NOTES.md, 9), and the accuracy of short CIFAR-10
  runs of alexnet_cifar and resnet20 unchanged within noise (7, 10). On a
  Zen 5 (full-width AVX-512) the peak is 1.7x float32's, training 1.4-1.7x
  (91, 92), and alexnet_cifar's 10-epoch recipe ends level in either
  precision at two seeds, 1.65x faster in bfloat16 (90). `auto` is the
  default of `fit`.
- CPU without bfloat16 instructions: float32 (bfloat16 would be emulated,
  slower than float32).
- XLA (`jit`): on for GPUs (it fuses batch norm, ReLU, additions and the
  optimizer update into few kernels, where the unfused ops are
  memory-bound), off on CPUs: measured here, XLA's CPU code was 1.6x to 6x
  slower than the oneDNN kernels TensorFlow uses without it (vgg16_bn: 15
  against 94 images/s in training), and compiling adds tens of seconds.
"""

import dataclasses

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the decision looks at.

    Attributes:
        gpus: compute capability (major, minor) of each visible GPU; empty for none.
        cpu_flags: the CPU's feature flags (`/proc/cpuinfo` names: avx512_bf16, amx_bf16, ...).
    """

    gpus: tuple = ()
    cpu_flags: frozenset = frozenset()

    def describe(self):
        if self.gpus:
            return "GPU compute capability " + ", ".join(f"{a}.{b}" for a, b in self.gpus)
        fast = sorted(self.cpu_flags & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f"})
        return "CPU" + (f" ({', '.join(fast)})" if fast else "")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def describe():
    """The `Hardware` this process trains on (the GPUs TensorFlow sees, else the CPU)."""
    import tensorflow as tf

    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        gpus.append(tuple(capability) if capability else (0, 0))
    return Hardware(gpus=tuple(gpus), cpu_flags=_cpu_flags())


def auto_precision(hw):
    """(precision, reason) for `--precision auto` on `hw` (the rules of the module docstring)."""
    if hw.gpus:
        capability = min(hw.gpus)
        if capability >= (8, 0):
            return "mixed_bfloat16", f"{hw.describe()}: bfloat16 tensor cores, no loss scaling needed"
        if capability >= (7, 0):
            return "mixed_float16", f"{hw.describe()}: float16 tensor cores (no bfloat16 before 8.0)"
        return "float32", f"{hw.describe()}: no tensor cores"
    if "amx_bf16" in hw.cpu_flags:
        return "mixed_bfloat16", f"{hw.describe()}: AMX bfloat16 tiles"
    if "avx512_bf16" in hw.cpu_flags:
        return "mixed_bfloat16", (
            f"{hw.describe()}: AVX512-BF16, measured faster than float32 end to end (benchmarks/NOTES.md)"
        )
    return "float32", f"{hw.describe()}: no fast low-precision units"


def auto_jit(hw):
    """(jit, reason) for `--jit auto` on `hw`."""
    if hw.gpus:
        return True, f"{hw.describe()}: XLA fuses the memory-bound element-wise ops"
    return False, f"{hw.describe()}: XLA measured no faster than TensorFlow's oneDNN kernels (benchmarks/NOTES.md)"


def resolve(config, hw=None):
    """(config with concrete `precision` and `jit`, {"precision": reason, "jit": reason} for what was auto).

    Settings that are not `auto` are kept as given; `hw` defaults to this
    machine (`describe()`), read only when something is `auto`.
    """
    reasons = {}
    changes = {}
    if config.precision == AUTO or config.jit == AUTO:
        hw = hw or describe()
        if config.precision == AUTO:
            changes["precision"], reasons["precision"] = auto_precision(hw)
        if config.jit == AUTO:
            changes["jit"], reasons["jit"] = auto_jit(hw)
    return (config.replace(**changes) if changes else config), reasons


def concrete_jit(jit):
    """`jit` as a bool for `model.compile`, resolving `auto` on this machine."""
    if jit == AUTO:
        return auto_jit(describe())[0]
    return bool(jit)

