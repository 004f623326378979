"""--precision auto / --jit auto: the decision (on described machines), config.json, resume."""

import json

import keras
import pytest

from kerascnn.runtime import hardware
from kerascnn.storage import rundir
from kerascnn.cli.app import build_parser
from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.runtime.hardware import Hardware, auto_jit, auto_precision
from kerascnn.training.fit import fit
from interrupt import StopAfter

H100 = Hardware(gpus=((9, 0),), cpu_flags=frozenset({"avx512f"}))
A100 = Hardware(gpus=((8, 0),))
T4 = Hardware(gpus=((7, 5),))
P100 = Hardware(gpus=((6, 0),))
SAPPHIRE_RAPIDS = Hardware(cpu_flags=frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
ZEN4 = Hardware(cpu_flags=frozenset({"avx512f", "avx512_bf16"}))
PLAIN_CPU = Hardware(cpu_flags=frozenset({"avx2", "fma"}))


@pytest.mark.parametrize(
    "hw, precision, jit",
    [
        (H100, "mixed_bfloat16", True),
        (A100, "mixed_bfloat16", True),
        (T4, "mixed_float16", True),
        (P100, "float32", True),
        (Hardware(gpus=((8, 6), (7, 0))), "mixed_float16", True),  # the weakest GPU decides
        (SAPPHIRE_RAPIDS, "mixed_bfloat16", False),
        (ZEN4, "mixed_bfloat16", False),  # measured faster here (benchmarks/NOTES.md)
        (PLAIN_CPU, "float32", False),
        (Hardware(), "float32", False),
    ],
)
def test_auto_resolves_by_hardware(hw, precision, jit):
    assert auto_precision(hw)[0] == precision
    assert auto_jit(hw)[0] is jit
    assert auto_precision(hw)[1] and auto_jit(hw)[1]  # every choice says why


def test_resolve_keeps_explicit_settings_and_reads_no_hardware(monkeypatch):
    monkeypatch.setattr(hardware, "describe", lambda: pytest.fail("hardware read without auto"))
    config = RunConfig(model="vgg11", precision="mixed_float16", jit=True)
    assert hardware.resolve(config) == (config, {})
    resolved, reasons = hardware.resolve(RunConfig(model="vgg11", precision="auto", jit="auto"), hw=T4)
    assert (resolved.precision, resolved.jit) == ("mixed_float16", True)
    assert set(reasons) == {"precision", "jit"}


def test_auto_is_the_default_and_resolves_per_machine():
    config = RunConfig(model="vgg11")
    assert (config.precision, config.jit) == ("auto", "auto")
    on_cpu, _ = hardware.resolve(config, hw=PLAIN_CPU)
    assert (on_cpu.precision, on_cpu.jit) == ("float32", False)
    on_t4, _ = hardware.resolve(config, hw=T4)
    assert (on_t4.precision, on_t4.jit) == ("mixed_float16", True)


def test_config_and_cli_accept_auto():
    with pytest.raises(ConfigError, match="jit"):
        RunConfig(model="vgg11", jit="sometimes")
    args = build_parser().parse_args(["fit", "vgg11", "--precision", "auto", "--jit", "auto"])
    assert (args.precision, args.jit) == ("auto", "auto")
    assert build_parser().parse_args(["fit", "vgg11", "--jit"]).jit is True
    assert build_parser().parse_args(["fit", "vgg11", "--no-jit"]).jit is False
    assert build_parser().parse_args(["fit", "vgg11"]).jit is None


class RecordPolicy(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        self.seen.append((self.model.dtype_policy.name, bool(self.model.jit_compile)))


@pytest.fixture
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_config_json_records_the_resolved_value_and_resume_reuses_it(tmp_path, monkeypatch, float32_afterwards):
    config = RunConfig.from_flags(
        "vgg11", dataset="synthetic", limit_train=64, batch_size=32, epochs=2, schedule="constant",
        run_dir=str(tmp_path / "run"), model_options={"width_multiplier": 0.25},
        precision="auto", jit="auto",
    )
    monkeypatch.setattr(hardware, "describe", lambda: SAPPHIRE_RAPIDS)
    first = RecordPolicy()
    with pytest.raises(KeyboardInterrupt):
        fit(config, log=lambda *_: None, verbose=0, extra_callbacks=[first, StopAfter(0)])
    saved = json.loads((tmp_path / "run" / rundir.CONFIG).read_text())
    assert (saved["precision"], saved["jit"]) == ("mixed_bfloat16", False)
    assert "AMX" in saved["resolved"]["auto"]["precision"]
    assert first.seen == [("mixed_bfloat16", False)]

    # Resumed on a machine where auto would choose otherwise: the saved values stand.
    monkeypatch.setattr(hardware, "describe", lambda: pytest.fail("resume re-resolved auto"))
    keras.mixed_precision.set_global_policy("float32")
    resumed = RecordPolicy()
    fit(resume_dir=tmp_path / "run", log=lambda *_: None, verbose=0, extra_callbacks=[resumed])
    assert resumed.seen == [("mixed_bfloat16", False)]
    assert json.loads((tmp_path / "run" / rundir.CONFIG).read_text())["precision"] == "mixed_bfloat16"
