"""Model families. Importing this package registers every model."""

from kerascnn.models import alexnet, vgg  # noqa: F401
from kerascnn.models import resnet  # noqa: F401
from kerascnn.models import googlenet  # noqa: F401
