"""airbench94 (Jordan 2024) in PyTorch on this project's CIFAR-10 images: what the data allows.

    python benchmarks/torch_airbench.py --data DIR/cifar10-jpeg --seed 0 --json OUT.json   # ~20 min on 2 AMX cores

Issue 16's targets come from figures published on the original CIFAR-10
binaries; this project trains on the data README's JPEG re-encodings (quality
75, 4:2:0 chroma), and every kerascnn recipe here has ended 2-4 points under
its anchor. airbench94 is the best-documented fast recipe there is: 94.01%
mean test accuracy over 1,000 runs of 9.9 epochs on the original images (its
README; with its flip-and-translate test-time augmentation, about 93.3%
without). Trained as published on these images, the difference from 94.01% is
the data's cost at a fixed recipe, which bounds what any recipe here can reach.

The recipe, as the reference script (`legacy/airbench94.py` of
KellerJordan/cifar10-airbench) sets it; this module reimplements it:

- Network: a 2x2 "valid" convolution to 24 channels initialised as a
  patch-whitening of 5,000 training images (the eigenvectors V of the 2x2x3
  patch covariance scaled by 1/sqrt(lambda + 5e-4), then +V and -V; weights
  frozen, bias trained for 3 epochs), GELU; three groups of conv3x3 ->
  max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU with 64, 256, 256
  channels; max-pool 3; a linear layer without bias, its logits times 1/9.
  Convolutions without bias, initialised as PyTorch's default and then
  identity (Dirac) on the first c_in filters. Batch norm with eps 1e-12,
  running statistics keeping 0.6 of their old value a step, scale frozen at 1.
- SGD with Nesterov momentum 0.85, batch 1024, the loss summed over the
  batch, label smoothing 0.2. Rates in airbench's decoupled form:
  lr = 11.5 / s, decay = 0.0153 * 1024 / s with s = 1024 (1 + 1 / (1 - 0.85));
  the batch-norm offsets at 64 lr, their decay divided so that every
  parameter decays by the same `decay` a step at the peak.
- Schedule per step: 0.2 -> 1 linearly over the first 23% of 9.9 epochs'
  steps, then 1 -> 0.07 at the last.
- Lookahead every 5 steps: the slow copy of every float tensor of the state
  (running statistics included) moves toward the fast weights by
  1 - 0.95^5 (t/T)^3, the fast weights are set to it; the last step sets
  the fast weights to the slow ones.
- Augmentation: reflect-padded random translation by up to 2 pixels, and
  alternating flips (a random half mirrored in epoch 0, every image mirrored
  the other way in each odd epoch).
- Test: plain, mirror (mean of two logits) and airbench's level 2
  (mirror plus the two one-pixel diagonal shifts, weighted 1/2, 1/4, 1/4).

What differs: the images (this project's JPEGs), the normalisation (their own
per-channel statistics, not airbench's constants for the originals), and the
arithmetic (bfloat16 autocast on the CPU where airbench runs float16 on a GPU).
"""

import math
import pathlib
import platform
import sys
import time

import numpy as np
import torch
import torch_recipe
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # kerascnn, for the command line

HYPER = {
    "epochs": 9.9, "batch_size": 1024, "lr": 11.5, "momentum": 0.85, "weight_decay": 0.0153,
    "bias_scaler": 64.0, "label_smoothing": 0.2, "whiten_bias_epochs": 3, "translate": 2,
    "widths": (64, 256, 256), "bn_momentum": 0.6, "logit_scale": 1 / 9, "warmup_fraction": 0.23,
    "start_factor": 0.2, "end_factor": 0.07, "lookahead_every": 5, "whiten_images": 5000, "whiten_eps": 5e-4,
}


class Conv(nn.Conv2d):
    """A convolution without bias, identity on its first c_in filters (airbench's Dirac start)."""

    def __init__(self, c_in, c_out):
        super().__init__(c_in, c_out, 3, padding="same", bias=False)
        with torch.no_grad():
            nn.init.dirac_(self.weight[:c_in])


def norm(channels, momentum):
    # airbench's momentum 0.6 is the old statistics' weight; PyTorch's argument is the new batch's
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=1 - momentum)
    bn.weight.requires_grad_(False)  # the scale stays 1
    return bn


class Group(nn.Sequential):
    def __init__(self, c_in, c_out, momentum):
        super().__init__(Conv(c_in, c_out), nn.MaxPool2d(2), norm(c_out, momentum), nn.GELU(),
                         Conv(c_out, c_out), norm(c_out, momentum), nn.GELU())


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def network(hyper=HYPER):
    w1, w2, w3 = hyper["widths"]
    whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    whiten.weight.requires_grad_(False)
    m = hyper["bn_momentum"]
    return nn.Sequential(whiten, nn.GELU(), Group(24, w1, m), Group(w1, w2, m), Group(w2, w3, m),
                         nn.MaxPool2d(3), nn.Flatten(), nn.Linear(w3, 10, bias=False), Scale(hyper["logit_scale"]))


def init_whitening(conv, images, eps):
    """conv.weight = [+V, -V] / sqrt(lambda + eps) from the 2x2 patches of `images` (NCHW, normalised)."""
    c, (h, w) = images.shape[1], conv.weight.shape[2:]
    patches = images.unfold(2, h, 1).unfold(3, w, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * h * w).double()
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(c * h * w, c, h, w)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([filters, -filters]).float())
        conv.bias.zero_()


def factor_at(step, total, hyper=HYPER):
    """airbench's triangle: start_factor -> 1 over the warm-up, then 1 -> end_factor at `total`."""
    warmup = int(total * hyper["warmup_fraction"])
    if step < warmup:
        frac = step / warmup
        return hyper["start_factor"] * (1 - frac) + frac
    frac = (step - warmup) / (total - warmup)
    return (1 - frac) + hyper["end_factor"] * frac


def optimizer_for(model, hyper=HYPER):
    scale = 1024 * (1 + 1 / (1 - hyper["momentum"]))
    lr = hyper["lr"] / scale
    decay = hyper["weight_decay"] * hyper["batch_size"] / scale
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    norm_ids = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    offsets = [p for _, p in named if id(p) in norm_ids]
    others = [p for _, p in named if id(p) not in norm_ids]
    bias_lr = lr * hyper["bias_scaler"]
    groups = [{"params": offsets, "lr": bias_lr, "weight_decay": decay / bias_lr, "base_lr": bias_lr},
              {"params": others, "lr": lr, "weight_decay": decay / lr, "base_lr": lr}]
    return torch.optim.SGD(groups, momentum=hyper["momentum"], nesterov=True)


class Lookahead:
    def __init__(self, model):
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model, decay):
        with torch.no_grad():
            for k, fast in model.state_dict().items():
                if fast.dtype.is_floating_point:
                    self.slow[k].lerp_(fast, 1 - decay)
                    fast.copy_(self.slow[k])


def translate_crop(padded, size, generator):
    """A random size x size window of each padded image (NCHW)."""
    n, r = len(padded), (padded.shape[-1] - size) // 2
    dy = torch.randint(0, 2 * r + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * r + 1, (n,), generator=generator)
    rows = dy[:, None] + torch.arange(size)[None]  # [n, size]
    cols = dx[:, None] + torch.arange(size)[None]
    index = torch.arange(n)[:, None, None, None]
    channels = torch.arange(padded.shape[1])[None, :, None, None]
    return padded[index, channels, rows[:, None, :, None], cols[:, None, None, :]]


def logits_of(model, x, batch=2000, level=0):
    """airbench's test-time augmentation: 0 plain, 1 mirror, 2 mirror and diagonal one-pixel shifts."""
    def mirror(v):
        return 0.5 * model(v).float() + 0.5 * model(v.flip(-1)).float()

    out = []
    for i in range(0, len(x), batch):
        v = x[i:i + batch]
        if level == 0:
            out.append(model(v).float())
        elif level == 1:
            out.append(mirror(v))
        else:
            padded = F.pad(v, (1, 1, 1, 1), mode="reflect")
            shifted = 0.5 * mirror(padded[..., :32, :32]) + 0.5 * mirror(padded[..., 2:, 2:])
            out.append(0.5 * mirror(v) + 0.5 * shifted)
    return torch.cat(out)


def accuracies(model, x, y, autocast):
    model.eval()
    with torch.no_grad(), autocast():
        result = {f"tta{level}": float((logits_of(model, x, level=level).argmax(1) == y).float().mean())
                  for level in (0, 1, 2)}
    model.train()
    return result


def train(data, seed=0, bf16=True, hyper=HYPER, log=print):
    """Train airbench94 on `data` (gpu_recipes.load_cifar's dict with "mean"/"std"); the per-epoch and final results."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    mean = torch.tensor(np.asarray(data["mean"], np.float32))[None, :, None, None]
    std = torch.tensor(np.asarray(data["std"], np.float32))[None, :, None, None]

    def normalised(images):
        return ((torch.from_numpy(images).permute(0, 3, 1, 2).float() - mean) / std).contiguous(
            memory_format=torch.channels_last)

    train_x, train_y = normalised(data["train"][0]), torch.from_numpy(np.asarray(data["train"][1], np.int64))
    test_x, test_y = normalised(data["test"][0]), torch.from_numpy(np.asarray(data["test"][1], np.int64))
    model = network(hyper).to(memory_format=torch.channels_last)
    started = time.perf_counter()
    # a random sample: the loader orders images by class, where airbench's first 5,000 are the originals' mixed order
    sample = torch.randperm(len(train_x), generator=generator)[:hyper["whiten_images"]]
    init_whitening(model[0], train_x[sample], hyper["whiten_eps"])
    optimizer = optimizer_for(model, hyper)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hyper["label_smoothing"], reduction="sum")
    batch = hyper["batch_size"]
    steps_per_epoch = len(train_x) // batch
    total = math.ceil(steps_per_epoch * hyper["epochs"])
    lookahead = Lookahead(model)
    # alternating flips: a fixed random half mirrored, every image mirrored the other way in odd epochs
    flip = torch.rand(len(train_x), generator=generator) < 0.5
    base = torch.where(flip[:, None, None, None], train_x.flip(-1), train_x)
    pad = hyper["translate"]
    padded = F.pad(base, (pad,) * 4, mode="reflect")
    trained, step, rows = time.perf_counter() - started, 0, []
    for epoch in range(math.ceil(hyper["epochs"])):
        start = time.perf_counter()
        model[0].bias.requires_grad_(epoch < hyper["whiten_bias_epochs"])
        images = translate_crop(padded, 32, generator) if pad else base
        if epoch % 2 == 1:
            images = images.flip(-1)
        images = images.contiguous(memory_format=torch.channels_last)
        order = torch.randperm(len(images), generator=generator)
        correct = seen = 0
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            xb, yb = images[idx], train_y[idx]
            factor = factor_at(step, total, hyper)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            logits, _ = torch_recipe.train_step(model, optimizer, loss_fn, xb, yb, autocast)
            step += 1
            correct, seen = correct + int((logits.argmax(1) == yb).sum()), seen + len(yb)
            if step % hyper["lookahead_every"] == 0:
                lookahead.update(model, 0.95 ** 5 * (step / total) ** 3)
            if step >= total:
                lookahead.update(model, 1.0)
                break
        seconds = time.perf_counter() - start
        trained += seconds
        plain = accuracies(model, test_x, test_y, autocast)["tta0"] if step < total else None
        rows.append({"epoch": epoch + 1, "steps": step, "train_s": round(seconds, 2), "train_accuracy": correct / seen,
                     "test_accuracy": plain})
        log(f"  airbench94 epoch {epoch + 1}: {seconds:.1f} s, train {100 * correct / seen:.2f}%"
            + (f", test {100 * plain:.2f}%" if plain is not None else ""))
    final = accuracies(model, test_x, test_y, autocast)
    return {"epochs_log": rows, "steps": step, "train_s": round(trained, 1), "test_accuracy": final["tta0"],
            "mirror_accuracy": final["tta1"], "tta2_accuracy": final["tta2"], "autocast_bf16": bf16,
            "torch": torch.__version__, "hyper": {k: v for k, v in hyper.items()}}


def parse_args(argv=None):
    from kerascnn.cli.flags import OneLineParser

    parser = OneLineParser(description="airbench94's published recipe in PyTorch on this project's CIFAR-10 "
                           "images: what the data allows a recipe that reaches 94.01%% on the originals")
    parser.add_argument("--data", required=True, help="the cifar10-jpeg folder or its .tar.gz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float32", action="store_true", help="no bfloat16 autocast")
    parser.add_argument("--epochs", type=float, default=HYPER["epochs"], help="default: airbench's 9.9")
    torch_recipe.add_machine_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from kerascnn.errors import ConfigError

    torch_recipe.check_data(args.data)
    if args.epochs <= 0:
        raise ConfigError(f"--epochs {args.epochs}: must be above 0")
    data = torch_recipe.read_data(args)
    hyper = {**HYPER, "epochs": args.epochs, "batch_size": min(HYPER["batch_size"], len(data["train"][0]))}
    print(f"airbench94: {hyper['epochs']} epochs in PyTorch {torch.__version__}, {len(data['train'][0])} training "
          f"and {len(data['test'][0])} test images", flush=True)
    result = train(data, args.seed, not args.float32, hyper, log=lambda line: print(line, flush=True))
    result.update(seed=args.seed, threads=torch.get_num_threads(), processor=platform.processor() or platform.machine(),
                  command=" ".join(sys.argv))
    print(f"airbench94: {100 * result['test_accuracy']:.2f}% plain, {100 * result['mirror_accuracy']:.2f}% mirrored, "
          f"{100 * result['tta2_accuracy']:.2f}% with airbench's test-time augmentation, "
          f"{result['train_s']:.0f} s of training", flush=True)
    if args.json:
        from kerascnn.storage.rundir import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    from kerascnn.errors import script_exit_status

    sys.exit(script_exit_status(main, "torch_airbench.py"))
