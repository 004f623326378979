"""The PyTorch reference: kerascnn's CIFAR models written in plain, idiomatic PyTorch.

    python benchmarks/torch_reference.py     # parameter counts against kerascnn's
    python benchmarks/torch_reference.py --time alexnet_cifar vgg16_bn resnet18   # PyTorch alone

Layer for layer the same networks as kerascnn builds at 32x32 with 10
classes, so `benchmarks/throughput.py --torch` compares the frameworks, not
the architectures:

- `alexnet_cifar` (kerascnn `alexnet_cifar(batch_norm=True)`): 3x3 convs
  64-128-256-256-256 with bias, each followed by batch norm and ReLU, 2x2/2
  max pooling after conv1, conv2 and conv5 (a 4x4x256 map), then FC-4096,
  BN, ReLU, dropout 0.5 twice, and the 10-way logits.
- `vgg16_bn` (kerascnn `vgg16_bn` at 32x32, its compact head): configuration
  D, 13 3x3 convs with bias, batch norm and ReLU, 2x2/2 pooling after each
  of the five stages (a 1x1x512 map), then FC-512, ReLU, dropout 0.5 twice
  (no batch norm in the head, as kerascnn) and the logits.
- `resnet18` (kerascnn `resnet18` at 32x32, whose `stem="auto"` picks the
  CIFAR stem): 3x3/1 conv 64 without bias, BN, ReLU and no max pooling (as
  kuangliu/pytorch-cifar), four stages of two basic blocks (64, 128, 256,
  512), projection shortcuts (1x1 conv + BN) where the shape changes, global
  average pooling and the logits.

Batch norm uses kerascnn's constants (PyTorch's defaults: momentum 0.1 in
PyTorch's convention, eps 1e-5). Training is the usual loop: SGD with
momentum 0.9 and weight decay 5e-4 (kerascnn's defaults) on the conv and
linear weights only (kerascnn decays kernels, not biases or batch norm),
cross-entropy on logits, eager mode, NCHW, `torch.set_num_threads(os.cpu_count())`.
Nothing here is tuned either way: it is what a PyTorch user would write.
"""

import os

import torch
from torch import nn

NUM_CLASSES = 10


def conv_bn_relu(c_in, c_out, bias=True):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


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
            nn.Linear(256 * 4 * 4, 4096), nn.BatchNorm1d(4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.BatchNorm1d(4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
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
            nn.Linear(512, units), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(units, units), nn.ReLU(inplace=True), nn.Dropout(dropout),
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


class ResNet18Cifar(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(3, 64, bias=False))
        blocks, c_in = [], 64
        for stage, width in enumerate((64, 128, 256, 512)):
            for i in range(2):
                blocks.append(BasicBlock(c_in, width, 2 if stage > 0 and i == 0 else 1))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


MODELS = {"alexnet_cifar": AlexNetCifar, "vgg16_bn": VGG16BN, "resnet18": ResNet18Cifar}
# The kerascnn options these modules reproduce (the rest are each model's defaults at 32x32).
KERASCNN_OPTIONS = {"alexnet_cifar": {"batch_norm": True}, "vgg16_bn": {}, "resnet18": {}}


def create(name, num_classes=NUM_CLASSES):
    if name not in MODELS:
        raise KeyError(f"no PyTorch reference for {name!r}; available: {', '.join(MODELS)}")
    return MODELS[name](num_classes)


def param_count(module):
    """Trainable parameters (batch norm running statistics are buffers, not parameters)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def sgd(module, lr=0.01, momentum=0.9, weight_decay=5e-4):
    """SGD with momentum; weight decay on conv and linear weights only, as kerascnn."""
    decay = [p for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in [m.weight]]
    ids = {id(p) for p in decay}
    rest = [p for p in module.parameters() if id(p) not in ids]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr, momentum=momentum,
    )


class Trainer:
    """The training and inference steps of the reference, on fixed synthetic batches."""

    def __init__(self, name, batch_size, infer_batch_size, image_size=32, seed=0):
        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(seed)
        self.model = create(name)
        self.optimizer = sgd(self.model)
        self.loss = nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch_size, 3, image_size, image_size, generator=g)
        self.y = torch.randint(0, NUM_CLASSES, (batch_size,), generator=g)
        self.x_infer = torch.randn(infer_batch_size, 3, image_size, image_size, generator=g)

    def train_steps(self, steps):
        self.model.train()
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.x), self.y)
            loss.backward()
            self.optimizer.step()
        return loss.item()  # waits for the step, as the Keras side does

    def infer(self, batches):
        self.model.eval()
        with torch.no_grad():
            for _ in range(batches):
                out = self.model(self.x_infer)
        return out.numpy()


class Worker:
    """A `Trainer` in its own Python process, driven one timed call at a time.

    Why a process: in one run the reference timed inside TensorFlow's process
    was up to 25% slower than alone (vgg16_bn training 80 against 101
    images/s, alexnet_cifar 123 against 159; benchmarks/NOTES.md, 9). Later
    checks did not reproduce that in-process, and the reference scatters
    that much between runs in its own process too, so the cause is open;
    but each framework in its own process, taking turns, removes one
    possible unfairness (two thread pools, allocators and oneDNN caches in
    one address space) whatever the cause.
    The child imports only PyTorch; `train_steps` and `infer` send one line
    and return when the child answers that the work is done (a pipe round
    trip is well under a millisecond, against steps of 0.1-3 s).
    """

    def __init__(self, name, batch_size, infer_batch_size, image_size=32, seed=0):
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", name,
             str(batch_size), str(infer_batch_size), str(image_size), str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        hello = self._reply()
        self.params, self.num_threads, self.version = int(hello[0]), int(hello[1]), hello[2]

    def _reply(self):
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the PyTorch reference process ended (exit status {self._process.wait()})")
        return line.split()

    def _call(self, verb, count):
        self._process.stdin.write(f"{verb} {count}\n")
        return self._reply()

    def train_steps(self, steps):
        return float(self._call("train", steps)[0])

    def infer(self, batches):
        return tuple(int(n) for n in self._call("infer", batches))

    def close(self):
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait()


def serve(name, batch_size, infer_batch_size, image_size, seed):
    """The child side of `Worker`: a Trainer answering `train N` / `infer N` lines on stdin."""
    import sys

    trainer = Trainer(name, int(batch_size), int(infer_batch_size), int(image_size), int(seed))
    print(param_count(trainer.model), torch.get_num_threads(), torch.__version__, flush=True)
    for line in sys.stdin:
        verb, count = line.split()
        if verb == "train":
            print(trainer.train_steps(int(count)), flush=True)
        else:
            print(*trainer.infer(int(count)).shape, flush=True)


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

    if sys.argv[1:2] == ["--serve"]:
        serve(*sys.argv[2:])
        sys.exit(0)
    if sys.argv[1:2] == ["--time"]:  # --time MODEL... : the reference alone (no TensorFlow imported)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        time_alone(sys.argv[2:] or list(MODELS))
        sys.exit(0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    main()
