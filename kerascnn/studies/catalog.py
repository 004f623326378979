"""The studies that ship with kerascnn (kerascnn/studies/files/*.toml), found by name or by path.

    alexnet-vs-vgg   AlexNet against VGG-16 and VGG-19
    lrn              AlexNet with and without Local Response Normalization, and with batch norm
    auxiliary        GoogLeNet with and without auxiliary classifiers; pretrained against from scratch
    augmentation     none, crop + flip, crop + flip + PCA colour jitter
    vgg-depth        VGG-11 to VGG-19, from scratch and with incremental initialisation
    grid             the 48-configuration KerasTuner grid on AlexNet-CIFAR

A user's own study file is read the same way (`kerascnn.studies.format`).
"""

import pathlib

from kerascnn.studies.format import StudyFileError, load_study

SHIPPED = pathlib.Path(__file__).resolve().parent / "files"


def shipped_names():
    """Names of the shipped studies, sorted."""
    return sorted(p.stem for p in SHIPPED.glob("*.toml"))


def find_study(spec):
    """The `Study` named `spec` (a shipped study) or read from the file `spec`."""
    path = pathlib.Path(spec)
    if spec in shipped_names() and not path.exists():
        return load_study(SHIPPED / f"{spec}.toml")
    if path.suffix == ".toml" or path.exists():
        return load_study(path)
    raise StudyFileError(
        f"no study {spec!r}: name a shipped study ({', '.join(shipped_names())}) or a .toml study file"
    )
