"""benchmarks/torch_recipe.py: kerascnn's recipe in PyTorch, step for step, as the calibration claims."""

import json
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import torch_recipe  # noqa: E402
import torch_reference  # noqa: E402

from kerascnn.config import RunConfig  # noqa: E402
from kerascnn.training.optim import learning_rate  # noqa: E402


@pytest.mark.parametrize("final_fraction", [0.0, 0.07])
def test_the_one_cycle_rate_is_kerascnns_at_every_step(final_fraction):
    config = RunConfig.from_flags("resnet18", recipe="fast", epochs=5, final_lr_fraction=final_fraction)
    steps_per_epoch = 7
    schedule = learning_rate(config.optim, steps_per_epoch, config.epochs)
    warmup = int(round(config.optim.warmup_epochs * steps_per_epoch))
    total = config.epochs * steps_per_epoch
    ours = [torch_recipe.one_cycle(t, config.optim.lr, warmup, total, final_fraction) for t in range(total + 1)]
    theirs = [float(schedule(t)) for t in range(total + 1)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert ours[0] == 0.0 and max(ours) == pytest.approx(config.optim.lr)


def test_parameter_groups_decay_kernels_only_and_scale_or_freeze_the_batch_norm_parameters():
    model = torch_reference.create("resnet18")
    groups = torch_recipe.parameter_groups(model, {"weight_decay": 5e-4, "bn_bias_lr_scale": 64.0,
                                                   "freeze_bn_scale": True})
    kernels, offsets, rest = groups
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {id(p) for p in kernels["params"]} == {id(m.weight) for m in convs} and kernels["weight_decay"] == 5e-4
    assert {id(p) for p in offsets["params"]} == {id(m.bias) for m in norms}
    assert offsets["lr_scale"] == 64.0 and offsets["weight_decay"] == 0.0 and rest["weight_decay"] == 0.0
    assert not any(m.weight.requires_grad for m in norms)  # frozen scales, in no group
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped)) and set(grouped) == trainable
    # kerascnn's --decay-norm-and-bias: the offsets at wd / their scale, the biases and scales at wd.
    kernels, offsets, rest = torch_recipe.parameter_groups(
        torch_reference.create("resnet18"), {"weight_decay": 5e-4, "bn_bias_lr_scale": 64.0, "decay_norm_and_bias": True})
    assert (kernels["weight_decay"], offsets["weight_decay"], rest["weight_decay"]) == (5e-4, 5e-4 / 64, 5e-4)


def _images(n=6, size=8, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def test_augmentation_off_is_the_normalised_image_in_channels_last():
    images, mean, std = _images(), torch.tensor([120.0, 110.0, 100.0]), torch.tensor([60.0, 50.0, 40.0])
    out = torch_recipe.augment(images, mean, std, {"translate": 0, "flip": "none", "cutout": 0},
                               torch.Generator().manual_seed(0))
    expected = (images.permute(0, 3, 1, 2).float() - mean[None, :, None, None]) / std[None, :, None, None]
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_each_crop_is_a_window_of_the_reflected_image_and_each_flip_a_mirror():
    images, mean, std = _images(n=20), torch.zeros(3), torch.ones(3)
    out = torch_recipe.augment(images, mean, std, {"translate": 2, "pad_mode": "reflect", "flip": "random",
                                                   "cutout": 0}, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (2, 2, 2, 2), mode="reflect")
    shifts, mirrored = set(), 0
    for i in range(len(images)):
        found = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                 if torch.equal((lambda w: w.flip(2) if flip else w)(padded[i, :, dy:dy + 8, dx:dx + 8]), out[i])]
        assert found, f"image {i} is no window of its padded image"
        shifts.add(found[0][:2])
        mirrored += found[0][2]
    assert len(shifts) > 3 and 0 < mirrored < 20  # the offsets and the flips vary from image to image


def test_cutout_zeroes_one_square_clipped_at_the_border():
    images, mean, std = _images(n=50, size=8) | 1, torch.zeros(3), torch.ones(3)  # no pixel is 0 before cutout
    out = torch_recipe.augment(images, mean, std, {"translate": 0, "flip": "none", "cutout": 4},
                               torch.Generator().manual_seed(2))
    zeros = (out == 0).all(1)  # [n, h, w]: every channel zeroed
    for mask in zeros:
        rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
        assert len(rows) and len(rows) <= 4 and len(cols) <= 4
        assert mask.sum() == len(rows) * len(cols)  # a rectangle: the square, clipped
        assert (rows.diff() == 1).all() and (cols.diff() == 1).all()
    assert (zeros.sum((1, 2)) < 16).any() and (zeros.sum((1, 2)) == 16).any()  # some clipped, some whole


def test_the_calibration_refuses_what_it_does_not_reproduce():
    alexnet = RunConfig.from_flags("alexnet_cifar", recipe="fast")
    with pytest.raises(ValueError, match="flip='alternating'.*logit_scale=0.125"):
        torch_recipe.check("alexnet_cifar", torch_recipe.settings_of(alexnet), alexnet.model_options)
    googlenet = RunConfig.from_flags("googlenet_cifar", recipe="fast")
    with pytest.raises(ValueError, match="auxiliary"):
        torch_recipe.check("googlenet_cifar", torch_recipe.settings_of(googlenet), googlenet.model_options)
    averaged = RunConfig.from_flags("resnet18", recipe="fast", ema=0.99)
    with pytest.raises(ValueError, match="ema=0.99"):
        torch_recipe.check("resnet18", torch_recipe.settings_of(averaged), averaged.model_options)
    resnet18 = RunConfig.from_flags("resnet18", recipe="fast")
    torch_recipe.check("resnet18", torch_recipe.settings_of(resnet18), resnet18.model_options)  # the calibration's recipe


def test_training_learns_a_separable_task_and_reports_every_epoch():
    """Bright images against dark ones: the recipe's loop must learn them (and log as it goes).

    resnet18 on 8x8 images (its global pooling takes any size) keeps the test cheap; 30 steps
    let the batch-norm statistics that the test pass uses settle.
    """
    rng = np.random.default_rng(0)
    labels = np.arange(128) % 2
    images = np.clip(rng.normal(80 + 100 * labels[:, None, None, None], 20, (128, 8, 8, 3)), 0, 255).astype(np.uint8)
    data = {"train": (images[:96], labels[:96]), "test": (images[96:], labels[96:]),
            "mean": images[:96].reshape(-1, 3).mean(0), "std": images[:96].reshape(-1, 3).std(0)}
    config = RunConfig.from_flags("resnet18", recipe="fast", epochs=5, batch_size=16, lr=0.05, translate=1, cutout=2)
    lines = []
    result = torch_recipe.train("resnet18", torch_recipe.settings_of(config), {}, data, epochs=5, device="cpu", log=lines.append)
    assert result["steps_per_epoch"] == 6 and [r["epoch"] for r in result["epochs_log"]] == [1, 2, 3, 4, 5]
    assert len(lines) == 5 and result["train_s"] > 0
    assert result["test_accuracy"] == 1.0 and result["flip_accuracy"] == 1.0


def test_resnet20s_recipe_is_one_the_calibration_reproduces():
    config = RunConfig.from_flags("resnet20", recipe="fast")
    torch_recipe.check("resnet20", torch_recipe.settings_of(config), config.model_options)


def _cifar_folder(root, per_class, size=8):
    """A cifar10-jpeg tree of flat-coloured `size`-pixel JPEGs: the class sets the red channel."""
    from PIL import Image

    for split, count in per_class.items():
        for label, cls in enumerate(("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck")):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (size, size), (25 * label, 40 * i, 90)).save(root / split / cls / f"{i:04d}.jpg")
    return root


def test_the_command_line_trains_the_recipe_on_a_cifar_folder_and_writes_its_result(tmp_path, capsys):
    data = _cifar_folder(tmp_path / "cifar10-jpeg", {"train": 4, "test": 1})
    out = tmp_path / "result" / "resnet20.json"
    result = torch_recipe.calibrate(["resnet20", "--data", str(data), "--epochs", "2", "--seed", "3",
                                     "--set", "batch_size=8", "--set", "cutout=2", "--bf16", "--threads", "1",
                                     "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["test_accuracy"] == result["test_accuracy"] and saved["epochs"] == 2 and saved["seed"] == 3
    assert saved["steps_per_epoch"] == 5 and saved["autocast_bf16"] is True and saved["threads"] == 1
    assert saved["settings"]["batch_size"] == 8 and saved["settings"]["cutout"] == 2
    assert saved["settings"]["weight_decay"] == RunConfig.from_flags("resnet20", recipe="fast").optim.weight_decay
    assert saved["sets"] == ["batch_size=8", "cutout=2"] and len(saved["epochs_log"]) == 2
    printed = capsys.readouterr().out
    assert "40 training and 10 test images" in printed and "% plain" in printed
    assert [p.name for p in out.parent.iterdir()] == ["resnet20.json"]  # no temporary file left


@pytest.mark.parametrize("argv, says", [
    (["resnet20", "--data", "{data}", "--set", "cutout=-3"], "cutout"),
    (["resnet20", "--data", "{data}", "--set", "ema=0.99"], "ema=0.99"),
    (["resnet20", "--data", "{missing}"], "no such folder"),
])
def test_a_bad_setting_or_data_folder_is_one_line_and_exit_2_before_any_image_is_read(argv, says, tmp_path, capsys):
    from kerascnn.errors import script_exit_status

    data = tmp_path / "cifar10-jpeg"
    (data / "train").mkdir(parents=True)  # no images: reading them would fail differently
    argv = [a.format(data=data, missing=tmp_path / "nowhere") for a in argv]
    assert script_exit_status(torch_recipe.main, "torch_recipe.py", argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err
