"""Model families. Importing this package registers every model."""

from kerascnn.models import alexnet, vgg  # noqa: F401
