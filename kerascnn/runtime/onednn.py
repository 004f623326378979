"""TensorFlow's oneDNN CPU kernels on every x86-64 CPU, not only on the ones TensorFlow picks.

TensorFlow (since 2.9) turns its oneDNN kernels on by default only on x86
CPUs with AVX512-VNNI, AVX512-BF16 or AMX. Elsewhere, on an AVX2 CPU such as
AMD's Zen 3, it runs Eigen's kernels, whose convolution backward passes took
2.5-3x the forward pass and whose transposed matrix products (the dense
layers' weight gradients) ran at a quarter of the forward product's rate. With
`TF_ENABLE_ONEDNN_OPTS=1` the alexnet_cifar training step (batch norm, Adam,
batch 128, float32) went from 64 to 104 images/s on a 2-core AMD EPYC Zen 3,
ahead of PyTorch's fastest setting there (89; benchmarks/NOTES.md, 22).

TensorFlow reads the variable once, when it is imported, so `prefer_onednn()`
runs when kerascnn is imported (kerascnn/__init__.py), before any of its
modules imports TensorFlow; child processes inherit it. A value the user set
is kept (`TF_ENABLE_ONEDNN_OPTS=0` gives Eigen's kernels back), and on other
architectures nothing is set. oneDNN sums in another order than Eigen, so
float32 results differ from Eigen's in the last bits; config.json records
which kernels a run used (`versions.tensorflow_onednn`).
"""

import os
import platform

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
X86_64 = ("x86_64", "amd64")


def prefer_onednn(environ=None, machine=None):
    """Set TF_ENABLE_ONEDNN_OPTS=1 on x86-64 unless it is set; True if it was set here."""
    environ = os.environ if environ is None else environ
    machine = platform.machine() if machine is None else machine
    if machine.lower() not in X86_64 or VARIABLE in environ:
        return False
    environ[VARIABLE] = "1"
    return True


def onednn_enabled():
    """Whether this process's TensorFlow runs its oneDNN kernels (TensorFlow's own answer)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
