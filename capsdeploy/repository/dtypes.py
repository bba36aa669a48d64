"""NumPy dtypes <-> KServe V2 datatypes <-> Triton config ``TYPE_*`` names."""

from __future__ import annotations

NP_TO_V2 = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
V2_TO_NP = {v: k for k, v in NP_TO_V2.items()}


def config_type(np_dtype: str) -> str:
    """numpy name -> ModelConfig DataType name (TYPE_FP32, ...)."""
    return "TYPE_" + NP_TO_V2[np_dtype]


def np_type_of_config(config_type_name: str) -> str:
    """ModelConfig DataType name -> numpy name."""
    v2 = config_type_name.removeprefix("TYPE_")
    if v2 not in V2_TO_NP:
        raise ValueError(f"data type {config_type_name} is not supported (numeric tensors only)")
    return V2_TO_NP[v2]
