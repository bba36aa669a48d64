"""Export: checkpoint -> ONNX (FP32/FP16/INT8), metadata, TensorRT compatibility."""

from .metadata import ModelMetadata, read_metadata
from .onnx_export import ExportOptions, export_onnx
from .trt_compat import check_tensorrt_compat

__all__ = ["ExportOptions", "ModelMetadata", "check_tensorrt_compat", "export_onnx", "read_metadata"]
