"""The PyTorch reference: kerascnn's CIFAR models written in plain, idiomatic PyTorch.

    python benchmarks/torch_reference.py     # parameter counts against kerascnn's
    python benchmarks/torch_reference.py --time alexnet_cifar vgg16_bn resnet18   # PyTorch alone

Layer for layer the same networks as kerascnn builds at 32x32 with 10
classes, so `benchmarks/throughput.py --torch` and `benchmarks/vs_torch.py`
compare the frameworks, not the architectures:

- `alexnet_cifar` (kerascnn `alexnet_cifar(batch_norm=True)`): 3x3 convs
  64-128-256-256-256 with bias, each followed by batch norm and ReLU, 2x2/2
  max pooling after conv1, conv2 and conv5 (a 4x4x256 map), then FC-4096,
  BN, ReLU, dropout 0.5 twice (none with `dropout=0`), and the 10-way logits.
- `vgg16_bn` (kerascnn `vgg16_bn` at 32x32, its compact head): configuration
  D, 13 3x3 convs with bias, batch norm and ReLU, 2x2/2 pooling after each
  of the five stages (a 1x1x512 map), then FC-512, ReLU, dropout 0.5 twice
  (no batch norm in the head, as kerascnn) and the logits.
- `resnet18` (kerascnn `resnet18` at 32x32, whose `stem="auto"` picks the
  CIFAR stem): 3x3/1 conv 64 without bias, BN, ReLU and no max pooling (as
  kuangliu/pytorch-cifar), four stages of two basic blocks (64, 128, 256,
  512), projection shortcuts (1x1 conv + BN) where the shape changes, global
  average pooling and the logits.
- `resnet20` (kerascnn `resnet20`): the CIFAR ResNet of the paper's section
  4.2, a 3x3 conv-16 stem, three stages of three basic blocks (16, 32, 64),
  option A shortcuts (the identity subsampled at stride 2, zero channels
  appended), global average pooling and the logits: 269,722 parameters.
- `googlenet_cifar` (kerascnn `googlenet_cifar`, batch-normalised): a 3x3/1
  conv-192 stem, inception 3a..5b with Table 1's widths and real 5x5
  branches, every convolution without bias and followed by BN and ReLU,
  3x3/2 ceil-mode max pooling after 3b and 4e (kerascnn's "same" pooling at
  even sizes: 32 -> 16 -> 8), global average pooling, dropout 0.4, logits.

Batch norm uses kerascnn's constants (PyTorch's defaults: momentum 0.1 in
PyTorch's convention, eps 1e-5). Training is the usual loop, cross-entropy on
logits, `torch.set_num_threads(os.cpu_count())`, with kerascnn's optimizers
at Keras' constants (`make_optimizer`): SGD with momentum 0.9, Adam (betas
0.9/0.999, eps 1e-7), RMSprop (rho 0.9, eps 1e-7, no momentum), and
kerascnn's coupled weight decay (5e-4 unless given) on the conv and linear
weights only (kerascnn decays kernels, not biases or batch norm).

Modes (`MODES`; any "+"-joined set of the features): `float32` is eager NCHW
float32, what a PyTorch user writes first; `channels_last` converts the model
and the inputs to `torch.channels_last` (NHWC in memory, oneDNN's preferred
layout); `bf16` runs forward and loss under `torch.autocast("cpu",
dtype=torch.bfloat16)` (the backward follows the forward's dtypes);
`compile` wraps the model in `torch.compile` (Inductor, which needs a C++
compiler). A mode that fails on this machine is reported as "unavailable:
<reason>" by `Worker`, not raised. "PyTorch at its best" is the fastest mode
measured in the same run.
"""

import argparse
import collections
import contextlib
import json
import os

import torch
from torch import nn

NUM_CLASSES = 10
FEATURES = ("channels_last", "bf16", "compile")
FLOAT32 = "float32"
MODES = (
    FLOAT32, "channels_last", "bf16", "channels_last+bf16", "compile", "compile+channels_last+bf16",
)
OPTIMIZERS = ("sgd", "adam", "rmsprop")
# kerascnn.config.DEFAULT_LR (without importing kerascnn, which imports TensorFlow).
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "rmsprop": 1e-3}


def conv_bn_relu(c_in, c_out, bias=True, kernel=3):
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _dropout(rate):
    return [nn.Dropout(rate)] if rate > 0 else []


class AlexNetCifar(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES, dropout=0.5):
        super().__init__()
        layers, c_in = [], 3
        for i, c_out in enumerate((64, 128, 256, 256, 256), start=1):
            layers += conv_bn_relu(c_in, c_out)
            if i in (1, 2, 5):
                layers.append(nn.MaxPool2d(2, 2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * 4 * 4, 4096), nn.BatchNorm1d(4096), nn.ReLU(inplace=True), *_dropout(dropout),
            nn.Linear(4096, 4096), nn.BatchNorm1d(4096), nn.ReLU(inplace=True), *_dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class VGG16BN(nn.Module):
    STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

    def __init__(self, num_classes=NUM_CLASSES, dropout=0.5, units=512):
        super().__init__()
        layers, c_in = [], 3
        for c_out, convs in self.STAGES:
            for _ in range(convs):
                layers += conv_bn_relu(c_in, c_out)
                c_in = c_out
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512, units), nn.ReLU(inplace=True), *_dropout(dropout),
            nn.Linear(units, units), nn.ReLU(inplace=True), *_dropout(dropout),
            nn.Linear(units, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. (2016), section 3.3, as kerascnn's `resnet20`: `x[:, :, ::s, ::s]`, then zero channels appended."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.extra, self.stride = c_out - c_in, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class CifarResNet(nn.Module):
    """A 3x3 conv-BN-ReLU stem of `widths[0]`, `blocks` basic blocks per stage (the first of each later stage
    at stride 2), global average pooling and the logits; projection or option A (`zero_pad`) shortcuts."""

    def __init__(self, widths, blocks, zero_pad, num_classes=NUM_CLASSES):
        super().__init__()
        self.blocks_per_stage = blocks
        self.stem = nn.Sequential(*conv_bn_relu(3, widths[0], bias=False))
        layers, c_in = [], widths[0]
        for stage, width in enumerate(widths):
            for i in range(blocks):
                block = BasicBlock(c_in, width, 2 if stage > 0 and i == 0 else 1)
                if zero_pad and c_in != width:
                    block.shortcut = ZeroPadShortcut(c_in, width, 2)
                layers.append(block)
                c_in = width
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class ResNet18Cifar(CifarResNet):
    """kerascnn's resnet18 at 32x32: the CIFAR stem, 2 blocks of 64, 128, 256, 512, projection shortcuts."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__((64, 128, 256, 512), 2, zero_pad=False, num_classes=num_classes)


class ResNet20Cifar(CifarResNet):
    """He et al. (2016), section 4.2 with n = 3: a 3x3 conv-16 stem, three stages of three basic blocks
    (16, 32, 64 filters on 32x32, 16x16, 8x8), option A shortcuts, global average pooling, the logits."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__((16, 32, 64), 3, zero_pad=True, num_classes=num_classes)


# GoogLeNet's Table 1 (kerascnn.models.googlenet.INCEPTION_BLOCKS, copied so the child process
# never imports Keras): name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj.
Inception = collections.namedtuple("Inception", "name n1x1 n3x3_reduce n3x3 n5x5_reduce n5x5 pool_proj")
INCEPTION_BLOCKS = (
    Inception("3a", 64, 96, 128, 16, 32, 32),
    Inception("3b", 128, 128, 192, 32, 96, 64),
    Inception("4a", 192, 96, 208, 16, 48, 64),
    Inception("4b", 160, 112, 224, 24, 64, 64),
    Inception("4c", 128, 128, 256, 24, 64, 64),
    Inception("4d", 112, 144, 288, 32, 64, 64),
    Inception("4e", 256, 160, 320, 32, 128, 128),
    Inception("5a", 256, 160, 320, 32, 128, 128),
    Inception("5b", 384, 192, 384, 48, 128, 128),
)
GOOGLENET_POOL_AFTER = ("3b", "4e")
# The branches in the order of their modules below (and of kerascnn's layer names).
INCEPTION_BRANCHES = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")


def basic_conv(c_in, c_out, kernel):
    """Convolution without bias, batch norm, ReLU ("same" padding at stride 1)."""
    return nn.Sequential(*conv_bn_relu(c_in, c_out, bias=False, kernel=kernel))


class InceptionModule(nn.Module):
    def __init__(self, c_in, spec):
        super().__init__()
        self.branch1 = basic_conv(c_in, spec.n1x1, 1)
        self.branch2 = nn.Sequential(basic_conv(c_in, spec.n3x3_reduce, 1), basic_conv(spec.n3x3_reduce, spec.n3x3, 3))
        self.branch3 = nn.Sequential(basic_conv(c_in, spec.n5x5_reduce, 1), basic_conv(spec.n5x5_reduce, spec.n5x5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), basic_conv(c_in, spec.pool_proj, 1))
        self.out_channels = spec.n1x1 + spec.n3x3 + spec.n5x5 + spec.pool_proj

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNetCifar(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES, dropout=0.4):
        super().__init__()
        layers, c_in = [basic_conv(3, 192, 3)], 192
        for spec in INCEPTION_BLOCKS:
            module = InceptionModule(c_in, spec)
            layers.append(module)
            c_in = module.out_channels
            if spec.name in GOOGLENET_POOL_AFTER:
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


MODELS = {
    "alexnet_cifar": AlexNetCifar, "vgg16_bn": VGG16BN, "resnet18": ResNet18Cifar, "googlenet_cifar": GoogLeNetCifar,
    "resnet20": ResNet20Cifar,
}
# The kerascnn options these modules reproduce (the rest are each model's defaults at 32x32).
KERASCNN_OPTIONS = {"alexnet_cifar": {"batch_norm": True}, "vgg16_bn": {}, "resnet18": {}, "googlenet_cifar": {},
                    "resnet20": {}}


def create(name, num_classes=NUM_CLASSES, **options):
    """The reference `name`; `options` (only `dropout` today) as kerascnn's builder takes them."""
    if name not in MODELS:
        raise KeyError(f"no PyTorch reference for {name!r}; available: {', '.join(MODELS)}")
    return MODELS[name](num_classes, **options)


def param_count(module):
    """Trainable parameters (batch norm running statistics are buffers, not parameters)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parse_mode(mode):
    """The set of FEATURES of a mode name ("float32", or features joined by "+")."""
    features = frozenset() if mode == FLOAT32 else frozenset(mode.split("+"))
    unknown = sorted(features - set(FEATURES))
    if unknown or not features and mode != FLOAT32:
        raise ValueError(f"mode must be {FLOAT32!r} or a '+'-joined set of {', '.join(FEATURES)}. Received: mode={mode!r}")
    return features


def mode_flag(text, also=(), parse=parse_mode):
    """argparse `type=` of `--torch-modes`: `text` if `parse` (or `also`) accepts it, else argparse's one-line error."""
    if text in also:
        return text
    try:
        parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def autocast(features):
    """bfloat16 autocast on the CPU for a `bf16` mode, else nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in features else contextlib.nullcontext()


def prepare(model, features):
    """(module to call, memory format of its inputs) for a mode: channels_last and/or torch.compile applied."""
    memory_format = torch.channels_last if "channels_last" in features else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    return (torch.compile(model) if "compile" in features else model), memory_format


def make_optimizer(module, name="sgd", lr=None, weight_decay=5e-4, momentum=0.9):
    """kerascnn's optimizer `name` at Keras' constants; coupled decay on conv and linear weights only.

    kerascnn adds `weight_decay * w` to the gradient of every kernel in its
    update step (kerascnn.training.weight_decay), which is PyTorch's `weight_decay` of
    SGD, Adam and RMSprop, given here to the conv and linear weights alone.
    """
    decay = [p for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in [m.weight]]
    ids = {id(p) for p in decay}
    rest = [p for p in module.parameters() if id(p) not in ids]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adam":  # keras.optimizers.Adam: beta_1 0.9, beta_2 0.999, epsilon 1e-7
        return torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-7)
    if name == "rmsprop":  # keras.optimizers.RMSprop: rho 0.9, epsilon 1e-7, momentum 0, not centred
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=1e-7)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: optimizer={name!r}")


def sgd(module, lr=0.01, momentum=0.9, weight_decay=5e-4):
    """SGD with momentum; weight decay on conv and linear weights only, as kerascnn."""
    return make_optimizer(module, "sgd", lr, weight_decay, momentum)


def one_line(error):
    """`Type: first line of the message`, at most 200 characters: why a mode is unavailable."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:200]


class Trainer:
    """The training and inference steps of the reference, on fixed synthetic batches, in one mode."""

    def __init__(self, name, batch_size, infer_batch_size, image_size=32, seed=0, optimizer="sgd", mode=FLOAT32,
                 lr=None, weight_decay=5e-4, model_options=None, threads=None):
        torch.set_num_threads(threads or os.cpu_count())
        torch.manual_seed(seed)
        self.features = parse_mode(mode)
        self.model = create(name, **(model_options or {}))
        self.net, memory_format = prepare(self.model, self.features)
        self.optimizer = make_optimizer(self.model, optimizer, lr, weight_decay)
        self.loss = nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch_size, 3, image_size, image_size, generator=g).contiguous(memory_format=memory_format)
        self.y = torch.randint(0, NUM_CLASSES, (batch_size,), generator=g)
        self.x_infer = torch.randn(infer_batch_size, 3, image_size, image_size, generator=g).contiguous(
            memory_format=memory_format
        )

    def train_steps(self, steps):
        self.model.train()
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.features):
                loss = self.loss(self.net(self.x), self.y)
            loss.backward()
            self.optimizer.step()
        return loss.item()  # waits for the step, as the Keras side does

    def infer(self, batches):
        self.model.eval()
        with torch.inference_mode(), autocast(self.features):
            for _ in range(batches):
                out = self.net(self.x_infer)
        return out.float().numpy()

    def warm_up(self, calls=None):
        """None, or "unavailable: <reason>" when the mode fails here (torch.compile without a compiler...).

        `calls` of each step: by default 2 with torch.compile (which may compile again on the second), else 1.
        """
        calls = calls or (2 if "compile" in self.features else 1)
        try:
            for _ in range(calls):
                if len(self.x):
                    self.train_steps(1)
                if len(self.x_infer):
                    self.infer(1)
        except Exception as e:  # Inductor, oneDNN and autocast raise many types
            return f"unavailable: {one_line(e)}"
        return None


class Child:
    """A Python process running `script --child OPTIONS_JSON`, answering one JSON line per request.

    The child imports only PyTorch (each framework in its own process,
    taking turns: see `Worker`). Its first line is a JSON "hello"; then each
    request line `VERB ARG...` gets one JSON line back. A pipe round trip is
    well under a millisecond; where that matters (batch-1 latency) the child
    times its own calls and sends the timings back.
    """

    def __init__(self, script, options):
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(script), "--child", json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.hello = self._reply()

    def _reply(self):
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the PyTorch reference process ended (exit status {self._process.wait()})")
        return json.loads(line)

    def request(self, verb, *args):
        self._process.stdin.write(" ".join([verb, *map(str, args)]) + "\n")
        return self._reply()

    def close(self):
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait()


def answer_requests(obj, hello):
    """The child side of `Child`: print `hello`, then answer `VERB ARG...` lines with `obj.VERB(*args)`."""
    import sys

    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        verb, *args = line.split()
        print(json.dumps(getattr(obj, verb)(*args)), flush=True)


class Worker(Child):
    """A `Trainer` in its own Python process, driven one timed call at a time.

    Why a process: in one run the reference timed inside TensorFlow's process
    was up to 25% slower than alone (vgg16_bn training 80 against 101
    images/s, alexnet_cifar 123 against 159; benchmarks/NOTES.md, 9). Later
    checks did not reproduce that in-process, and the reference scatters
    that much between runs in its own process too, so the cause is open;
    but each framework in its own process, taking turns, removes one
    possible unfairness (two thread pools, allocators and oneDNN caches in
    one address space) whatever the cause.
    The child warms up (a training step and an inference batch, two of each
    with torch.compile) before it says hello; `unavailable` is then None, or
    "unavailable: <reason>" for a mode that fails on this machine, whose
    `train_steps` and `infer` must not be called.
    """

    def __init__(self, name, batch_size, infer_batch_size, image_size=32, seed=0, **options):
        super().__init__(__file__, dict(
            name=name, batch_size=batch_size, infer_batch_size=infer_batch_size, image_size=image_size, seed=seed,
            **options,
        ))
        self.params, self.num_threads = self.hello["params"], self.hello["threads"]
        self.version, self.unavailable = self.hello["version"], self.hello["unavailable"]

    def train_steps(self, steps):
        return float(self.request("train", steps))

    def infer(self, batches):
        return tuple(self.request("infer", batches))


class _TrainerRequests:
    """What `Worker`'s child answers."""

    def __init__(self, trainer):
        self.trainer = trainer

    def train(self, steps):
        return self.trainer.train_steps(int(steps))

    def infer(self, batches):
        return list(self.trainer.infer(int(batches)).shape)


def serve(options):
    """The child side of `Worker`: a warmed-up Trainer answering `train N` / `infer N`."""
    trainer = Trainer(**options)
    hello = {
        "params": param_count(trainer.model), "threads": torch.get_num_threads(), "version": torch.__version__,
        "unavailable": trainer.warm_up(),
    }
    answer_requests(_TrainerRequests(trainer), hello)


def time_alone(names, repeats=5, batch_size=128, infer_batch_size=512):
    """PyTorch's own images/s with nothing else running: the best case for the reference.

    `throughput.py --torch` measures the ratio in one run, taking turns with
    kerascnn; this is the cross-check that the reference was not slowed by
    that company (medians of `repeats` after one warm-up, `timing.timings`).
    """
    import statistics

    from timing import timings

    rates = {}
    for name in names:
        trainer = Trainer(name, batch_size, infer_batch_size)
        train = statistics.median(timings(lambda: trainer.train_steps(1), repeats))
        infer = statistics.median(timings(lambda: trainer.infer(1), repeats))
        rates[name] = (batch_size / train, infer_batch_size / infer)
        print(f"{name}: train {rates[name][0]:.1f} images/s (batch {batch_size}), "
              f"inference {rates[name][1]:.1f} images/s (batch {infer_batch_size}); "
              f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    return rates


# --- the same weights in both frameworks ----------------------------------------------


def keras_layer_names(name, torch_model):
    """kerascnn's layer names of `name`, in the order of `torch_model`'s conv, batch-norm and linear modules."""
    if name == "alexnet_cifar":
        names = [n for i in range(1, 6) for n in (f"conv{i}", f"conv{i}_bn")]
        return names + ["fc6", "fc6_bn", "fc7", "fc7_bn", "predictions"]
    if name == "vgg16_bn":
        names = [n for s, (_, convs) in enumerate(VGG16BN.STAGES, 1) for i in range(1, convs + 1)
                 for n in (f"block{s}_conv{i}", f"block{s}_bn{i}")]
        return names + ["fc1", "fc2", "predictions"]
    if name in ("resnet18", "resnet20"):
        names, per_stage = ["conv1_conv", "conv1_bn"], torch_model.blocks_per_stage
        for index, block in enumerate(torch_model.blocks):
            prefix = f"conv{index // per_stage + 2}_block{index % per_stage + 1}"
            projected = isinstance(block.shortcut, nn.Sequential) and len(block.shortcut)
            convs = ("1", "2", "0") if projected else ("1", "2")
            names += [n for k in convs for n in (f"{prefix}_{k}_conv", f"{prefix}_{k}_bn")]
        return names + ["predictions"]
    if name == "googlenet_cifar":
        names = ["conv1_3x3", "conv1_3x3_bn"]
        for spec in INCEPTION_BLOCKS:
            names += [n for b in INCEPTION_BRANCHES for n in (f"inception_{spec.name}_{b}", f"inception_{spec.name}_{b}_bn")]
        return names + ["predictions"]
    raise KeyError(f"no PyTorch reference for {name!r}; available: {', '.join(MODELS)}")


def weight_rows(name, torch_model, keras_model):
    """[(torch module path, kerascnn layer name, kind)] in the form of kerascnn.weights.torchvision's tables."""
    modules = [(path, m) for path, m in torch_model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d))]
    names = keras_layer_names(name, torch_model)
    if len(names) != len(modules):
        raise AssertionError(f"{name}: {len(modules)} PyTorch modules with weights, {len(names)} kerascnn names")
    flattened = {id(layer.output) for layer in keras_model.layers if type(layer).__name__ == "Flatten"}
    rows = []
    for (path, module), layer_name in zip(modules, names):
        if isinstance(module, nn.Conv2d):
            kind = "conv"
        elif isinstance(module, nn.Linear):
            fed_by_flatten = id(keras_model.get_layer(layer_name).input) in flattened
            kind = "flatten_linear" if fed_by_flatten else "linear"
        else:
            kind = "bn"
        rows.append((path, layer_name, kind))
    return rows


def copy_to_keras(name, torch_model, keras_model):
    """Set `keras_model`'s weights (kerascnn `name`) to `torch_model`'s; return the number of tensors copied.

    The conversions are kerascnn's own torchvision import
    (`kerascnn.weights.torchvision`: conv and linear layouts, NCHW -> NHWC
    flatten order, batch norm's four vectors), with this module's layer
    correspondence; every tensor's shape is checked on the way.
    """
    from kerascnn.weights import torchvision as tv

    tensors = {k: v.detach().float().numpy() for k, v in torch_model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    copied = 0
    for prefix, layer_name, kind in weight_rows(name, torch_model, keras_model):
        layer = keras_model.get_layer(layer_name)
        values = []
        for key, needed in tv._torch_names_and_shapes(kind, prefix, layer):
            value = tensors.pop(key)
            if value.shape != needed:
                raise AssertionError(f"{key} {value.shape} does not fit kerascnn {layer_name} {needed}")
            values.append(tv._to_keras(kind, key, value, layer, keras_model))
        if kind == "bn" and abs(layer.epsilon - 1e-5) > 1e-12:
            raise AssertionError(f"kerascnn {layer_name} has batch-norm epsilon {layer.epsilon}, PyTorch 1e-5")
        layer.set_weights(values)
        copied += len(values)
    if tensors:
        raise AssertionError(f"{name}: PyTorch tensors not copied: {sorted(tensors)[:5]}")
    return copied


def randomize_statistics(torch_model, seed=0):
    """Batch norm's scale, shift and running statistics set to random values (init leaves them 1, 0, 0, 1).

    So that a comparison of the two frameworks' outputs also checks that
    every statistic went to the right place.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def main():
    from kerascnn.runtime.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from kerascnn.models import create_model

    for name in MODELS:
        keras_model = create_model(name, num_classes=NUM_CLASSES, input_shape=(32, 32, 3), **KERASCNN_OPTIONS[name])
        trainable = sum(int(w.numpy().size) for w in keras_model.trainable_weights)
        torch_params = param_count(create(name))
        print(f"{name}: kerascnn {trainable:,} trainable, PyTorch {torch_params:,}")
        assert trainable == torch_params, name


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--child"]:
        serve(json.loads(sys.argv[2]))
        sys.exit(0)
    if sys.argv[1:2] == ["--time"]:  # --time MODEL... : the reference alone (no TensorFlow imported)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        time_alone(sys.argv[2:] or list(MODELS))
        sys.exit(0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    main()
