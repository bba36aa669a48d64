"""The ONNX contract between export and runtime: tensor names and the metadata schema.

A neutral module (no torch, no onnx): export writes it into ``metadata_props``,
every runtime reads it back (ONNX Runtime's ``custom_metadata_map``, a plan's
sidecar). Every value is a string; structured values are JSON. The runtime reads
preprocessing from here, never from flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .version import __version__

PREFIX = "capsdeploy."
INPUT_NAME = "image"
OUTPUT_NAMES = ("scores", "poses", "reconstruction")


@dataclass(frozen=True)
class ModelMetadata:
    capsdeploy_version: str
    precision: str  # fp32 | fp16 | int8
    input_dtype: str  # float32 | float16 | uint8
    normalization: dict
    routing_iters: int
    trained_routing_iters: int
    class_names: list
    weights_sha256: str
    run_config: dict
    with_decoder: bool

    @classmethod
    def for_run(
        cls, info, routing_iters: int, precision: str, input_dtype: str, with_decoder: bool
    ) -> ModelMetadata:
        """The metadata of a model built from run directory ``info`` (a RunInfo)."""
        return cls(
            capsdeploy_version=__version__,
            precision=precision,
            input_dtype=input_dtype,
            normalization=info.normalization,
            routing_iters=routing_iters,
            trained_routing_iters=info.model.routing_iters,
            class_names=info.class_names,
            weights_sha256=info.weights_sha256,
            run_config=info.raw,
            with_decoder=with_decoder,
        )

    def to_props(self) -> dict[str, str]:
        return {PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata | None:
        """None when the file carries no capsdeploy metadata (a foreign export)."""
        if PREFIX + "precision" not in props:
            return None
        fields: dict[str, Any] = {}  # str fields as written, the others parsed from JSON
        for name, typ in cls.__annotations__.items():
            raw = props[PREFIX + name]
            fields[name] = raw if typ == "str" else json.loads(raw)
        return cls(**fields)
