"""capsdeploy: capsule networks from PyTorch training to production inference."""

from .errors import CapsDeployError
from .model import CapsNet, CapsNetConfig
from .model.checkpoint import load_run
from .version import __version__

__all__ = ["CapsDeployError", "CapsNet", "CapsNetConfig", "__version__", "load_run"]
