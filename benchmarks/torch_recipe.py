"""kerascnn's `fast` recipe in PyTorch on the same images: a calibration of kerascnn's accuracy.

    from torch_recipe import train
    result = train("resnet18", settings, model_options, data, epochs=40)

    # on this machine's CPU, beside benchmarks/time_to_accuracy.py's run of the same recipe:
    python benchmarks/torch_recipe.py resnet20 --data DIR/cifar10-jpeg --epochs 20 --seed 0 --bf16 --json OUT.json

When kerascnn's `resnet18` ends 4 points short of a published figure, is it
the framework, the recipe or the data (this project's CIFAR-10 is JPEG
re-encoded, which the data README warns runs below the published figures)?
This trains the same network (`benchmarks/torch_reference.py`, layer for
layer kerascnn's) with the same recipe on the same images in PyTorch, the
framework of the published figures, so a run beside kerascnn's answers the
first question and bounds the third.

The recipe, as kerascnn resolves it (`RunConfig.from_flags(...).optim` and
`.data`, flattened into `settings`), reproduced step for step:

- SGD with (Nesterov) momentum; PyTorch's update `b = mu b + g`,
  `w -= lr_t (g + mu b)` is Keras' `m = mu m - lr_t g`, `w += mu m - lr_t g`
  at a constant rate and differs from it only in when a changing rate enters.
- Coupled L2 decay `+ wd * w` on the convolution and linear weights only
  (kerascnn.training.weight_decay), through the momentum; with
  `decay_norm_and_bias` on the biases and batch-norm scales too, and on the
  offsets at `wd / bn_bias_lr_scale`.
- The one-cycle rate per step t (`kerascnn.training.optim.PiecewiseLinear`):
  0 at t = 0, linear to the peak at round(warmup_epochs * steps), linear to
  `final_lr_fraction * peak` at the last step; the batch-norm offsets at
  `bn_bias_lr_scale` times it, the scales frozen with `freeze_bn_scale`.
- Cross-entropy with label smoothing `y (1 - s) + s / K` (the same formula in
  both frameworks).
- The `cifar` augmentation on the GPU, as benchmarks/gpu_recipes.py does it:
  a fresh permutation each epoch, floor(N / batch) full batches, a random
  crop of the image padded `translate` pixels each side (reflected or
  zero), a horizontal flip with probability 1/2, normalising with the
  training set's per-channel mean and standard deviation, then cutout's
  zeroed square centred uniformly and clipped at the border.
- bfloat16 autocast and channels_last, cuDNN autotuning: PyTorch at its best.

What differs and stays: each framework's default initialisation (Keras'
Glorot-uniform kernels, PyTorch's Kaiming-uniform with a = sqrt(5)). A
setting this does not reproduce (another optimizer or schedule, weight
averaging, lookahead, whitening, alternating flips, auxiliary classifiers,
a logit scale) is refused with a ValueError naming it, so a calibration is
never silently a different recipe.
"""

import dataclasses
import os
import pathlib
import platform
import sys
import time

import numpy as np
import torch
import torch_reference
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # kerascnn, for the command line

# The settings this module reproduces, and the value each must have when it cannot vary.
FIXED = {"optimizer": "sgd", "schedule": "onecycle", "augment": "cifar", "ema": None, "lookahead": None,
         "clip_norm": None, "random_erasing": 0.0, "pca_jitter": None, "tta": False}
FLIPS = ("random", "none")
MODEL_OPTIONS = {"dropout"}
NO_AUXILIARY_HEADS = ("alexnet_cifar", "vgg16_bn", "resnet18", "resnet20")  # torch_reference's GoogLeNet has none


def check(name, settings, model_options):
    """Raise ValueError naming every setting of `settings` this calibration would not reproduce."""
    wrong = [f"{k}={settings.get(k)!r}" for k, v in FIXED.items() if settings.get(k, v) != v]
    if settings.get("flip", "random") not in FLIPS:
        wrong.append(f"flip={settings['flip']!r}")
    if settings.get("whiten"):
        wrong.append("whiten")
    wrong += [f"{k}={v!r}" for k, v in model_options.items() if k not in MODEL_OPTIONS]
    if name not in NO_AUXILIARY_HEADS:
        wrong.append(f"model {name} (kerascnn trains auxiliary classifiers the reference lacks)")
    if wrong:
        raise ValueError(f"torch_recipe does not reproduce: {', '.join(wrong)}")


def one_cycle(step, peak, warmup_steps, total_steps, final_fraction=0.0):
    """The rate at 0-based step `step`: 0 -> peak over the warm-up, then linear to final_fraction * peak."""
    if warmup_steps and step < warmup_steps:
        return peak * step / warmup_steps
    start, end = (peak, peak * final_fraction)
    span = total_steps - warmup_steps
    return start + (end - start) * min(1.0, (step - warmup_steps) / span)


def parameter_groups(model, settings):
    """SGD groups: decayed kernels, batch-norm offsets at their rate scale, the rest; scales frozen if asked.

    With `decay_norm_and_bias` the offsets and the rest are decayed too, the
    offsets by wd / their rate scale (kerascnn.training.optim.decay_norm_and_bias).
    """
    kernels, offsets, rest = [], [], []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            kernels.append(module.weight)
            rest += [module.bias] if module.bias is not None else []
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            if settings.get("freeze_bn_scale"):
                module.weight.requires_grad_(False)
            else:
                rest.append(module.weight)
            offsets.append(module.bias)
    counted = {id(p) for p in kernels + offsets + rest} | {id(m.weight) for m in model.modules()
                                                           if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    missing = [n for n, p in model.named_parameters() if id(p) not in counted]
    if missing:
        raise ValueError(f"parameters in no group: {missing}")
    decay, offset_scale = settings["weight_decay"], settings.get("bn_bias_lr_scale", 1.0)
    decay_all = bool(settings.get("decay_norm_and_bias"))
    return [
        {"params": kernels, "weight_decay": decay, "lr_scale": 1.0},
        {"params": offsets, "weight_decay": decay / offset_scale if decay_all else 0.0, "lr_scale": offset_scale},
        {"params": rest, "weight_decay": decay if decay_all else 0.0, "lr_scale": 1.0},
    ]


def augment(images, mean, std, settings, generator):
    """uint8 NHWC images on the device -> normalised float NCHW views of the `cifar` preset."""
    n, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2).float()
    t = settings.get("translate", 4)
    if t:
        mode = "reflect" if settings.get("pad_mode", "reflect") == "reflect" else "constant"
        padded = nn.functional.pad(x, (t, t, t, t), mode=mode)
        dy, dx = (torch.randint(0, 2 * t + 1, (n,), device=x.device, generator=generator) for _ in range(2))
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        x = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(3, device=x.device)[None, :, None, None],
                   rows, cols]
    if settings.get("flip", "random") == "random":
        mirror = torch.rand(n, device=x.device, generator=generator) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    x = (x - mean[None, :, None, None]) / std[None, :, None, None]
    size = settings.get("cutout", 0)
    if size:
        centre = (torch.rand(n, 2, device=x.device, generator=generator) * torch.tensor([h, w], device=x.device)).long()
        top, left = centre[:, 0] - size // 2, centre[:, 1] - size // 2
        r, c = torch.arange(h, device=x.device)[None, :], torch.arange(w, device=x.device)[None, :]
        inside = (((r >= top[:, None]) & (r < top[:, None] + size))[:, :, None]
                  & ((c >= left[:, None]) & (c < left[:, None] + size))[:, None, :])
        x = x.masked_fill(inside[:, None], 0.0)
    return x.contiguous(memory_format=torch.channels_last)


def predict(model, x, batch, autocast):
    model.eval()
    out = []
    with torch.no_grad(), autocast():
        for i in range(0, len(x), batch):
            out.append(model(x[i:i + batch]).float().softmax(1))
    model.train()
    return torch.cat(out)


def train_step(model, optimizer, loss_fn, x, y, autocast):
    """One optimizer step on the batch (x, y), the forward pass under `autocast()`; (logits, loss)."""
    with autocast():
        logits = model(x)
        loss = loss_fn(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits, loss


def train(name, settings, model_options, data, epochs, seed=0, device=None, eval_batch=1000, log=print):
    """Train `name` for `epochs` with `settings`; {"epochs_log", "test_accuracy", "flip_accuracy", "train_s", ...}.

    `data`: {"train": (uint8 [N, 32, 32, 3], labels), "test": (...), "mean": [3], "std": [3]} on the
    0-255 scale, as benchmarks/gpu_recipes.py loads it. Training seconds exclude the per-epoch test.
    """
    check(name, settings, model_options)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True
    model = torch_reference.create(name, **model_options).to(device).to(memory_format=torch.channels_last)
    groups = parameter_groups(model, settings)
    optimizer = torch.optim.SGD(groups, lr=0.0, momentum=settings["momentum"], nesterov=settings["nesterov"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings["label_smoothing"])
    bf16 = device == "cuda" or settings.get("bf16", False)

    def autocast():
        return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)

    mean = torch.tensor(np.asarray(data["mean"], np.float32), device=device)
    std = torch.tensor(np.asarray(data["std"], np.float32), device=device)
    train_x = torch.from_numpy(data["train"][0]).to(device)
    train_y = torch.from_numpy(np.asarray(data["train"][1], np.int64)).to(device)
    test_x = ((torch.from_numpy(data["test"][0]).to(device).permute(0, 3, 1, 2).float() - mean[None, :, None, None])
              / std[None, :, None, None]).contiguous(memory_format=torch.channels_last)
    test_y = torch.from_numpy(np.asarray(data["test"][1], np.int64)).to(device)
    batch = settings["batch_size"]
    steps = len(train_x) // batch
    total, warmup = epochs * steps, int(round(settings["warmup_epochs"] * steps))
    generator = torch.Generator(device=device).manual_seed(seed)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows, trained, step = [], 0.0, 0
    for epoch in range(epochs):
        sync()
        start = time.perf_counter()
        order = torch.randperm(len(train_x), device=device, generator=generator)[:steps * batch]
        x, y = augment(train_x[order], mean, std, settings, generator), train_y[order]
        correct = torch.zeros((), device=device)
        for i in range(steps):
            lr = one_cycle(step, settings["lr"], warmup, total, settings.get("final_lr_fraction", 0.0))
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
            logits, loss = train_step(model, optimizer, loss_fn, xb, yb, autocast)
            correct += (logits.argmax(1) == yb).sum()
            step += 1
        sync()
        seconds = time.perf_counter() - start
        trained += seconds
        accuracy = float((predict(model, test_x, eval_batch, autocast).argmax(1) == test_y).float().mean())
        rows.append({"epoch": epoch + 1, "train_s": round(seconds, 3), "cumulative_train_s": round(trained, 2),
                     "test_accuracy": accuracy, "train_accuracy": float(correct) / (steps * batch),
                     "loss": float(loss.detach())})
        log(f"  torch {name} epoch {epoch + 1}/{epochs}: {seconds:.2f} s, test {100 * accuracy:.2f}%, "
            f"train {100 * rows[-1]['train_accuracy']:.2f}%")
    plain = predict(model, test_x, eval_batch, autocast)
    flipped = predict(model, test_x.flip(3), eval_batch, autocast)
    return {
        "epochs": epochs, "batch_size": batch, "steps_per_epoch": steps, "epochs_log": rows,
        "test_accuracy": float((plain.argmax(1) == test_y).float().mean()),
        "flip_accuracy": float(((plain + flipped).argmax(1) == test_y).float().mean()),
        "train_s": round(trained, 2), "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__, "autocast_bf16": bf16,
    }


# --- the command line: the calibration on this machine (the GPU one runs inside gpu_recipes.py) ---


def settings_of(config):
    """The flat settings `train` reads, from a resolved kerascnn RunConfig."""
    return {**dataclasses.asdict(config.optim), **dataclasses.asdict(config.data), "whiten": getattr(config, "whiten", None)}


def add_machine_arguments(parser):
    """--threads, --limit-per-class and --json: what every PyTorch run on this machine's images takes."""
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's threads (default: every CPU)")
    parser.add_argument("--limit-per-class", type=int, default=None, help="the first N images of each class (smoke runs)")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write the result here")


def check_data(path):
    """DataError, before anything else is done, when `--data` names nothing."""
    from kerascnn.errors import DataError

    if not pathlib.Path(path).exists():
        raise DataError(f"--data {path}: no such folder or file; give the cifar10-jpeg folder or its .tar.gz")


def read_data(args):
    """PyTorch's threads set from `args`, then the CIFAR-10 tree of `args.data` with its channel statistics."""
    import gpu_recipes

    torch.set_num_threads(args.threads or os.cpu_count())
    return gpu_recipes.with_channel_statistics(gpu_recipes.load_cifar(args.data, args.limit_per_class))


def parse_args(argv=None):
    from kerascnn.cli.flags import OneLineParser

    parser = OneLineParser(description="kerascnn's recipe for MODEL, trained by PyTorch on the same CIFAR-10 "
                           "images: the framework's share of an accuracy gap (runs on the CPU or a GPU)")
    parser.add_argument("model", choices=sorted(torch_reference.MODELS))
    parser.add_argument("--data", required=True, help="the cifar10-jpeg folder or its .tar.gz")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                        help="change one setting of the recipe, as time_to_accuracy.py's --set")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast on the CPU (always on a GPU)")
    add_machine_arguments(parser)
    return parser.parse_args(argv)


def calibrate(argv=None):
    """The command line's work: the result `train` returns, with what ran it."""
    args = parse_args(argv)
    import gpu_recipes  # the same loader and recipe resolution as the GPU run

    from kerascnn.errors import ConfigError

    check_data(args.data)
    config = gpu_recipes.resolve(args.model, args.recipe, args.epochs, args.seed, args.sets)
    settings = {**settings_of(config), "bf16": args.bf16}
    try:  # refused before any image is read
        check(args.model, settings, config.model_options)
    except ValueError as e:
        raise ConfigError(f"{e}; drop those --set values or take another model") from None
    started = time.perf_counter()
    data = read_data(args)
    print(f"{args.model}: {config.epochs} epochs of the {config.recipe} recipe in PyTorch {torch.__version__}, "
          f"{len(data['train'][0])} training and {len(data['test'][0])} test images", flush=True)
    result = train(args.model, settings, config.model_options, data, config.epochs, args.seed,
                   log=lambda line: print(line, flush=True))
    result.update(model=args.model, recipe=config.recipe, seed=args.seed, sets=args.sets, threads=torch.get_num_threads(),
                  processor=platform.processor() or platform.machine(), command=" ".join(sys.argv),
                  settings={k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool, type(None)))},
                  total_s=round(time.perf_counter() - started, 1))
    print(f"{args.model}: {100 * result['test_accuracy']:.2f}% plain, {100 * result['flip_accuracy']:.2f}% with flips, "
          f"{result['train_s']:.0f} s of training", flush=True)
    if args.json:
        from kerascnn.storage.rundir import write_json

        write_json(args.json, result)
    return result


def main(argv=None):
    calibrate(argv)
    return 0


if __name__ == "__main__":
    from kerascnn.errors import script_exit_status

    sys.exit(script_exit_status(main, "torch_recipe.py"))
