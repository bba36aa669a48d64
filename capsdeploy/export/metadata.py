"""Writing and reading the metadata contract (``capsdeploy.contract``) in ONNX protos."""

from __future__ import annotations

import onnx

from ..contract import INPUT_NAME, OUTPUT_NAMES, PREFIX, ModelMetadata

__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "ModelMetadata", "read_metadata", "write_metadata"]


def write_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> None:
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for k, v in meta.to_props().items():
        model.metadata_props.add(key=k, value=v)


def read_metadata(model: onnx.ModelProto) -> ModelMetadata | None:
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
