"""torchvision state dicts -> kerascnn models (`import-weights torchvision`).

A torchvision checkpoint is a state dict: tensor names such as
`features.0.weight` or `layer1.0.bn2.running_var` (the attribute paths of
torchvision/models/alexnet.py, vgg.py, googlenet.py and resnet.py) mapped to
tensors in PyTorch's layouts. Each family below has one table listing, for
every kerascnn layer that holds weights, the torchvision module it comes
from and the kind of conversion:

- "conv": torch `(out, in / groups, kh, kw)` -> Keras `(kh, kw, in / groups, out)`;
- "linear": torch `(out, in)` -> Keras `(in, out)`;
- "flatten_linear", the first linear layer after a flatten: torch flattens an
  NCHW map as `(C, H, W)`, Keras an NHWC map as `(H, W, C)`, so the weight is
  reshaped to `(out, C, H, W)`, transposed to `(H, W, C, out)` and reshaped
  to `(H * W * C, out)`;
- "bn": `weight, bias, running_mean, running_var` -> `gamma, beta,
  moving_mean, moving_var`; `num_batches_tracked` has no Keras counterpart
  and is dropped. The epsilon must agree (`BN_EPSILON`, checked on every
  layer): PyTorch's default 1e-5 in VGG-BN and the ResNets, as in kerascnn,
  and 0.001 in googlenet's BasicConv2d.

Which kerascnn model holds which torchvision network:

- `alexnet` -> `alexnet_v2`: torchvision's AlexNet is the single-tower
  64-192-384-256-256 network of Krizhevsky's "One weird trick" (2014), not
  the two-tower paper model, and has no LRN. The arithmetic is the same at
  224: conv1 11x11/4 with padding 2 (224 -> 55), 3x3/2 max pools without
  padding (55 -> 27 -> 13 -> 6), 5x5 and 3x3 convolutions padded 2 and 1
  ("same"); its AdaptiveAvgPool2d(6) is then the identity.
- `vgg11/13/16/19[_bn]` -> the kerascnn model of the same name with
  `head="paper"` (FC-4096, FC-4096 on the 7x7x512 map at 224x224).
  `features.N` counts conv, [bn,] ReLU and pooling modules; `classifier.0/3/6`
  are fc1, fc2 and predictions. The _bn variants keep their conv biases.
- `googlenet` -> `googlenet` with `batch_norm=True, layout="torchvision",
  aux_logits=False, dropout=0.2`: torchvision's BasicConv2d is convolution
  without bias, batch norm (epsilon 0.001) and ReLU; its "5x5" branches have
  3x3 kernels (pytorch/vision#906) and its maxpool4 is 2x2/2; its ceil-mode
  max pools equal kerascnn's "same" ones at 224. The auxiliary heads
  (`aux1.*`, `aux2.*`) are left out, and counted as left out:
  torchvision pools them with AdaptiveAvgPool2d(4) (windows of 4 at offsets
  0, 3, 7, 10 of the 14x14 map), which kerascnn's paper heads (5x5/3 average
  pooling) are not, and they are discarded at inference anyway; fine-tuning
  starts without them. torchvision's published weights are used with
  `transform_input=True`, which maps an ImageNet-normalised input
  `(x / 255 - mean) / std` back to `(x / 255 - 0.5) / 0.5`; so the weights
  file records the normalisation mean = std = 127.5 (0-255 scale) and the
  model has no input transform of its own. torchvision's dropout is 0.2.
- `resnet18/34/50/101/152` -> the same name: torchvision's ResNets are
  "v1.5" (stride on the 3x3 convolution of a bottleneck, no convolution
  bias, epsilon 1e-5), as kerascnn's; `layerN.B.convK/bnK` are
  `conv{N+1}_block{B+1}_{K}_conv/bn` and `downsample.0/1` the projection
  shortcut `..._0_conv/bn`.

Every torchvision tensor must be used and every kerascnn weight assigned: the
first tensor missing, left over, or of a shape that does not fit is a
`ConfigError` naming it and both shapes (in PyTorch's layout), so a checkpoint
of another architecture cannot load silently. The ImageNet normalisation
torchvision's other weights were trained with (mean 0.485, 0.456, 0.406 and
std 0.229, 0.224, 0.225 on the 0-1 scale, RGB) is recorded in the weights file
for `fit --weights`.
"""

import hashlib
import pathlib

from kerascnn.errors import ConfigError

IMAGENET_MEAN = tuple(round(255 * m, 4) for m in (0.485, 0.456, 0.406))
IMAGENET_STD = tuple(round(255 * s, 4) for s in (0.229, 0.224, 0.225))
IMAGE_SIZE = (224, 224)

# Convolutions per stage (torchvision's vgg cfgs "A", "B", "D", "E").
VGG_STACKS = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
RESNET_STAGES = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


def _vgg(name):
    """(kerascnn model, options, [(torch prefix, keras layer, kind)]) for torchvision's VGG."""
    batch_norm = name.endswith("_bn")
    stack = VGG_STACKS[name.removesuffix("_bn")]
    rows, index = [], 0
    for stage, convs in enumerate(stack, start=1):
        for i in range(1, convs + 1):
            rows.append((f"features.{index}", f"block{stage}_conv{i}", "conv"))
            if batch_norm:
                rows.append((f"features.{index + 1}", f"block{stage}_bn{i}", "bn"))
            index += 3 if batch_norm else 2  # conv, [bn,] relu
        index += 1  # max pooling
    rows += [("classifier.0", "fc1", "flatten_linear"), ("classifier.3", "fc2", "linear"),
             ("classifier.6", "predictions", "linear")]
    return name, {"head": "paper"}, rows


def _alexnet(name):
    """torchvision's features.0/3/6/8/10 and classifier.1/4/6 (Dropout at classifier.0 and .3)."""
    rows = [(f"features.{i}", f"conv{n}", "conv") for n, i in enumerate((0, 3, 6, 8, 10), start=1)]
    rows += [("classifier.1", "fc6", "flatten_linear"), ("classifier.4", "fc7", "linear"),
             ("classifier.6", "predictions", "linear")]
    return "alexnet_v2", {}, rows


def _resnet(name):
    """torchvision's conv1, bn1, layerN.B.{convK, bnK, downsample.0, downsample.1} and fc."""
    block, stages = RESNET_STAGES[name]
    convs = 2 if block == "basic" else 3
    rows = [("conv1", "conv1_conv", "conv"), ("bn1", "conv1_bn", "bn")]
    for layer, blocks in enumerate(stages, start=1):
        for b in range(blocks):
            torch_prefix, keras_prefix = f"layer{layer}.{b}", f"conv{layer + 1}_block{b + 1}"
            for k in range(1, convs + 1):
                rows.append((f"{torch_prefix}.conv{k}", f"{keras_prefix}_{k}_conv", "conv"))
                rows.append((f"{torch_prefix}.bn{k}", f"{keras_prefix}_{k}_bn", "bn"))
            # The first block of a stage that changes shape has the projection shortcut.
            if b == 0 and (layer > 1 or block == "bottleneck"):
                rows.append((f"{torch_prefix}.downsample.0", f"{keras_prefix}_0_conv", "conv"))
                rows.append((f"{torch_prefix}.downsample.1", f"{keras_prefix}_0_bn", "bn"))
    rows.append(("fc", "predictions", "linear"))
    return name, {}, rows


def _googlenet(name):
    """torchvision's BasicConv2d modules (conv + bn) of the stem and of each Inception branch, and fc."""
    def basic_conv(torch_prefix, keras_name):
        return [
            (f"{torch_prefix}.conv", keras_name, "conv"),
            (f"{torch_prefix}.bn", f"{keras_name}_bn", "bn"),
        ]

    rows = basic_conv("conv1", "conv1_7x7") + basic_conv("conv2", "conv2_reduce")
    rows += basic_conv("conv3", "conv2_3x3")
    branches = {"branch1": "1x1", "branch2.0": "3x3_reduce", "branch2.1": "3x3",
                "branch3.0": "5x5_reduce", "branch3.1": "5x5", "branch4.1": "pool_proj"}
    for block in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
        for torch_branch, keras_branch in branches.items():
            rows += basic_conv(f"inception{block}.{torch_branch}", f"inception_{block}_{keras_branch}")
    rows.append(("fc", "predictions", "linear"))
    # dropout 0.2: torchvision's GoogLeNet(dropout=0.2), what the weights were trained with.
    options = {"batch_norm": True, "layout": "torchvision", "aux_logits": False, "dropout": 0.2}
    return "googlenet", options, rows


# Tensors a family deliberately leaves out (see the module docstring).
IGNORED_PREFIXES = {"googlenet": ("aux1.", "aux2.")}
# torchvision's BatchNorm2d epsilon: the default 1e-5, but 0.001 in googlenet's BasicConv2d.
BN_EPSILON = {"googlenet": 1e-3}
# nn.BatchNorm2d's tensors in the order of Keras' BatchNormalization weights
# (gamma, beta, moving_mean, moving_var); num_batches_tracked has no counterpart.
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
# Input normalisation of torchvision's published weights, when not ImageNet mean/std.
NORMALIZATION = {"googlenet": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))}

FAMILIES = {
    "googlenet": _googlenet,
    "alexnet": _alexnet,
    **{name: _vgg for name in VGG_STACKS},
    **{f"{name}_bn": _vgg for name in VGG_STACKS},
    **{name: _resnet for name in RESNET_STAGES},
}


def read_state_dict(path):
    """The tensors of a .pth file as {name: float32 numpy array}; needs PyTorch."""
    try:
        import torch
    except ImportError:
        raise ConfigError("reading .pth files needs PyTorch: pip install -e '.[bench]'") from None
    from kerascnn.storage import readback

    what = "pass a torchvision state dict saved with torch.save (a .pth file)"
    readback.read_bytes(path, what, size=1)  # missing, a folder, unreadable, empty: one line each
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}") from None
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path} is not a PyTorch checkpoint torch.load can read ({first[:200]}); {what}") from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(hasattr(v, "shape") for v in loaded.values()):
        raise ConfigError(f"{path} holds no state dict (a mapping of tensor names to tensors)")
    # DataParallel / DistributedDataParallel checkpoints prefix every name with "module.".
    return {
        k.removeprefix("module."): v.detach().float().numpy()
        for k, v in loaded.items()
        if not k.endswith("num_batches_tracked")
    }


def _flattened_shape(model, layer):
    """(H, W, C) of the map the Flatten layer feeding `layer` flattens."""
    for candidate in model.layers:
        if candidate.__class__.__name__ == "Flatten" and candidate.output is layer.input:
            return tuple(candidate.input.shape[1:4])
    raise AssertionError(f"{layer.name} is not fed by a Flatten layer")


def _torch_names_and_shapes(kind, prefix, layer):
    """[(torch tensor name, shape torch stores it in)] for each weight of kerascnn `layer`, in order.

    The shapes are the Keras shapes turned into PyTorch's layouts, so a
    mismatch can be reported in the terms of the checkpoint.
    """
    shapes = [tuple(w.shape) for w in layer.weights]
    if kind == "bn":
        return [(f"{prefix}.{s}", shape) for s, shape in zip(BN_TENSORS, shapes, strict=True)]
    kernel, *bias = shapes
    if kind == "conv":  # Keras (kh, kw, in / groups, out) -> torch (out, in / groups, kh, kw)
        kernel = (kernel[3], kernel[2], kernel[0], kernel[1])
    else:  # Keras (in, out) -> torch (out, in)
        kernel = (kernel[1], kernel[0])
    return [(f"{prefix}.weight", kernel)] + [(f"{prefix}.bias", b) for b in bias]


def _to_keras(kind, name, value, layer, model):
    """Tensor `name` of the checkpoint in the layout of the matching Keras weight."""
    if not name.endswith(".weight") or kind == "bn":
        return value  # biases and batch-norm vectors are laid out alike
    if kind == "conv":
        return value.transpose(2, 3, 1, 0)
    if kind == "flatten_linear":
        # torch.flatten of an NCHW map orders the inputs (C, H, W); Flatten of NHWC, (H, W, C).
        h, w, c = _flattened_shape(model, layer)
        return value.reshape(value.shape[0], c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
    return value.T


def _check_epsilon(name, layer):
    """A batch-norm epsilon other than torchvision's would shift every output: a builder bug."""
    expected = BN_EPSILON.get(name, 1e-5)
    if abs(layer.epsilon - expected) > 1e-12:
        raise AssertionError(f"kerascnn layer {layer.name} has epsilon {layer.epsilon}; torchvision {name} uses {expected}")


def _shape(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def build_from_state_dict(name, tensors):
    """(kerascnn model, metadata, number of tensors mapped, number left out) for torchvision `name`.

    `tensors` ({name: numpy array}, as `read_state_dict` returns) is
    consumed: each tensor is removed as it is used. The first tensor that is
    missing, not used, or of the wrong shape raises `ConfigError` naming it.
    """
    from kerascnn.models import create_model

    if name not in FAMILIES:
        raise ConfigError(f"no torchvision mapping for {name!r}; choose one of {', '.join(sorted(FAMILIES))}")
    model_name, options, rows = FAMILIES[name](name)
    ignored = [k for k in tensors if k.startswith(IGNORED_PREFIXES.get(name, ()))]
    for key in ignored:
        del tensors[key]
    last = f"{rows[-1][0]}.weight"
    if last not in tensors or tensors[last].ndim != 2:
        raise ConfigError(f"the checkpoint has no {last} (the classifier); is it torchvision's {name}?")
    num_classes = int(tensors[last].shape[0])
    model = create_model(model_name, num_classes=num_classes, input_shape=(*IMAGE_SIZE, 3), **options)
    assigned, mapped = set(), 0
    for prefix, layer_name, kind in rows:
        layer = model.get_layer(layer_name)
        if kind == "bn":
            _check_epsilon(name, layer)
        values = []
        for key, needed in _torch_names_and_shapes(kind, prefix, layer):
            if key not in tensors:
                raise ConfigError(
                    f"the checkpoint has no {key} (kerascnn {model_name} layer {layer_name} needs "
                    f"{_shape(needed)}); is it torchvision's {name}?"
                )
            value = tensors.pop(key)
            if value.shape != needed:
                raise ConfigError(
                    f"{key} has shape {_shape(value.shape)} but kerascnn {model_name} layer {layer_name} "
                    f"needs {_shape(needed)}; is the checkpoint torchvision's {name}?"
                )
            values.append(_to_keras(kind, key, value, layer, model))
        layer.set_weights(values)
        assigned.add(layer_name)
        mapped += len(values)
    if tensors:
        key = sorted(tensors)[0]
        raise ConfigError(
            f"the checkpoint has {len(tensors)} tensor(s) torchvision's {name} does not have, first "
            f"{key} {_shape(tensors[key].shape)}; is it torchvision's {name}?"
        )
    unassigned = [layer.name for layer in model.layers if layer.weights and layer.name not in assigned]
    if unassigned:  # a mapping table out of step with the builder: a bug, not a user error
        raise AssertionError(f"kerascnn {model_name} layers without torchvision weights: {unassigned}")
    mean, std = NORMALIZATION.get(name, (IMAGENET_MEAN, IMAGENET_STD))
    metadata = {
        "model": model_name,
        "model_options": options,
        "num_classes": num_classes,
        "image_size": list(IMAGE_SIZE),
        "normalization": {"mean": list(mean), "std": list(std), "channel_order": "rgb"},
    }
    return model, metadata, mapped, len(ignored)


def sha256_of(path):
    """Hex SHA-256 of a file, read in 1 MiB pieces (VGG checkpoints are over 500 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def import_torchvision(name, pth_path, output):
    """Convert torchvision `name` from `pth_path` and write the weights file `output`.

    Returns (output path, kerascnn model name, tensors mapped, tensors left out).
    Nothing is written unless every tensor maps (the file is written atomically).
    """
    from kerascnn.weights.archive import save_weights_file

    pth_path = pathlib.Path(pth_path)
    tensors = read_state_dict(pth_path)
    try:
        model, metadata, mapped, ignored = build_from_state_dict(name, tensors)
    except ConfigError as e:  # a tensor missing, extra or of another shape: name the file
        message = str(e)
        raise ConfigError(message if str(pth_path) in message else f"{pth_path}: {message}") from None
    metadata["source"] = f"torchvision {name} from {pth_path.name} (sha256 {sha256_of(pth_path)})"
    save_weights_file(model, output, metadata)
    return pathlib.Path(output), metadata["model"], mapped, ignored
