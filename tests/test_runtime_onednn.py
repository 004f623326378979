"""TensorFlow's oneDNN kernels on every x86-64 CPU (kerascnn.runtime.onednn)."""

import os
import platform

from kerascnn.runtime.onednn import VARIABLE, onednn_enabled, prefer_onednn


def test_x86_64_gets_onednn_unless_the_user_chose():
    environ = {}
    assert prefer_onednn(environ, machine="x86_64") and environ == {VARIABLE: "1"}
    environ = {VARIABLE: "0"}  # the user's choice (Eigen's kernels) is kept
    assert not prefer_onednn(environ, machine="x86_64") and environ == {VARIABLE: "0"}
    environ = {}
    assert not prefer_onednn(environ, machine="aarch64") and environ == {}  # TensorFlow's own choice there


def test_importing_kerascnn_before_tensorflow_decides_the_kernels():
    # conftest imports kerascnn before TensorFlow, as main.py and every benchmark do, so
    # the variable prefer_onednn() set (or the user's own) is the one TensorFlow read.
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert onednn_enabled() is (os.environ[VARIABLE] != "0")
