"""benchmarks/torch_airbench.py: airbench94's published recipe, piece by piece as its docstring claims."""

import json
import math
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import torch_airbench  # noqa: E402
from test_benchmarks_torch_recipe import _cifar_folder  # noqa: E402


def test_the_schedule_is_airbenchs_triangle():
    total = 476  # 48 steps of 1,024 over 9.9 epochs
    warmup = int(total * 0.23)
    assert torch_airbench.factor_at(0, total) == pytest.approx(0.2)
    assert torch_airbench.factor_at(warmup // 2, total) == pytest.approx(0.2 + 0.8 * (warmup // 2) / warmup)
    assert torch_airbench.factor_at(warmup, total) == pytest.approx(1.0)
    assert torch_airbench.factor_at(total, total) == pytest.approx(0.07)


def test_the_whitening_layer_decorrelates_the_patches_with_both_signs():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(64, 3, 13, 13))
    images = torch.tensor(base[:, :, :12, :12] + 0.8 * base[:, :, 1:, 1:] + 0.5 * base[:, ::-1, :12, :12],
                          dtype=torch.float32)
    conv = torch.nn.Conv2d(3, 24, 2, bias=True)
    torch_airbench.init_whitening(conv, images, eps=0.0)
    with torch.no_grad():
        responses = conv(images).permute(0, 2, 3, 1).reshape(-1, 24).double()
    second_moment = responses[:, :12].T @ responses[:, :12] / len(responses)  # airbench's is uncentred
    np.testing.assert_allclose(second_moment.numpy(), np.eye(12), atol=1e-4)
    torch.testing.assert_close(conv.weight[12:], -conv.weight[:12])
    assert torch.all(conv.bias == 0)


def test_the_optimizer_is_airbenchs_decoupled_sgd():
    model = torch_airbench.network()
    optimizer = torch_airbench.optimizer_for(model)
    offsets, others = optimizer.param_groups
    scale = 1024 * (1 + 1 / 0.15)
    assert others["lr"] == pytest.approx(11.5 / scale) and offsets["lr"] == pytest.approx(64 * 11.5 / scale)
    # Every parameter shrinks by the same decay a step at the peak: lr * weight_decay = 0.0153 * 1024 / scale.
    for group in (offsets, others):
        assert group["lr"] * group["weight_decay"] == pytest.approx(0.0153 * 1024 / scale)
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.85
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {id(p) for p in offsets["params"]} == {id(m.bias) for m in norms}
    assert not any(m.weight.requires_grad for m in norms) and not model[0].weight.requires_grad
    assert all(m.momentum == pytest.approx(0.4) and m.eps == 1e-12 for m in norms)
    # kerascnn's airbench94 has 1,975,096 weights: these and the 2,304 moving statistics (buffers here)
    assert sum(p.numel() for p in model.parameters()) == 1_975_096 - 2_304


def test_the_convolutions_start_as_identities_on_their_first_filters():
    conv = torch_airbench.Conv(4, 6)
    for j in range(4):
        expected = torch.zeros(4, 3, 3)
        expected[j, 1, 1] = 1.0
        torch.testing.assert_close(conv.weight[j], expected)
    assert conv.weight[4:].abs().max() <= 1 / math.sqrt(36) and conv.bias is None


def test_lookahead_moves_the_slow_weights_and_the_last_call_lands_on_them():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    lookahead = torch_airbench.Lookahead(model)
    with torch.no_grad():
        model.weight.fill_(1.0)
    lookahead.update(model, 0.75)  # slow = 0.75 * 0 + 0.25 * 1, and the fast weights take it
    torch.testing.assert_close(model.weight, torch.full((1, 2), 0.25))
    with torch.no_grad():
        model.weight.fill_(5.0)
    lookahead.update(model, 1.0)
    torch.testing.assert_close(model.weight, torch.full((1, 2), 0.25))


def test_level_2_is_half_the_mirror_and_a_quarter_each_diagonal_shift():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        got = torch_airbench.logits_of(model, x, level=2)
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")

        def mirror(v):
            return 0.5 * model(v) + 0.5 * model(v.flip(-1))

        expected = 0.5 * mirror(x) + 0.25 * mirror(padded[..., :32, :32]) + 0.25 * mirror(padded[..., 2:, 2:])
    torch.testing.assert_close(got, expected)


def test_the_command_line_trains_on_a_cifar_folder_and_writes_its_result(tmp_path, capsys):
    data = _cifar_folder(tmp_path / "cifar10-jpeg", {"train": 3, "test": 1}, size=32)
    out = tmp_path / "result" / "airbench.json"
    assert torch_airbench.main(["--data", str(data), "--epochs", "2", "--seed", "1", "--threads", "1",
                                "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["steps"] == 2 and saved["hyper"]["batch_size"] == 30 and saved["autocast_bf16"] is True
    assert len(saved["epochs_log"]) == 2 and 0.0 <= saved["tta2_accuracy"] <= 1.0 and saved["seed"] == 1
    assert "30 training and 10 test images" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["airbench.json"]


@pytest.mark.parametrize("argv, says", [
    (["--data", "{missing}"], "no such folder"),
    (["--data", "{data}", "--epochs", "0"], "--epochs 0"),
])
def test_bad_input_is_one_line_and_exit_2(argv, says, tmp_path, capsys):
    from kerascnn.errors import script_exit_status

    data = tmp_path / "cifar10-jpeg"
    (data / "train").mkdir(parents=True)
    argv = [a.format(data=data, missing=tmp_path / "nowhere") for a in argv]
    assert script_exit_status(torch_airbench.main, "torch_airbench.py", argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err
