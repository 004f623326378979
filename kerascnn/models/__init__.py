"""Model families. Importing this package registers every model."""

from kerascnn.models import vgg  # noqa: F401
