"""Triton's model repository: the on-disk contract between export and serve.

``REPO/<model>/config.pbtxt`` plus ``REPO/<model>/<version>/model.onnx|model.plan``,
exactly as NVIDIA Triton reads it, so the directory `capsdeploy export --format
triton` writes is served unchanged by `capsdeploy serve` and by Triton. Neutral
like ``contract``: no torch; the protobuf schema comes from ``tritonclient``.
"""

from .config import (
    CAPSNET,
    DECODER,
    MAIN_MODEL,
    BatchingOptions,
    config_to_json,
    model_config,
    normalize_config,
    parse_config,
    render_config,
)
from .dtypes import NP_TO_V2, V2_TO_NP
from .layout import ModelEntry, find_models, validate_model_dir

__all__ = [
    "CAPSNET",
    "DECODER",
    "MAIN_MODEL",
    "NP_TO_V2",
    "V2_TO_NP",
    "BatchingOptions",
    "ModelEntry",
    "config_to_json",
    "find_models",
    "model_config",
    "normalize_config",
    "parse_config",
    "render_config",
    "validate_model_dir",
]
