"""Build, render, parse and JSON-render Triton ``config.pbtxt`` (the ``ModelConfig`` protobuf).

Parsing goes through Triton's own protobuf schema (``tritonclient.grpc.model_config_pb2``)
with ``text_format``, which rejects unknown fields and wrong types, so what we accept Triton
accepts. Semantic checks protobuf cannot make live in ``layout.validate_model_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from .dtypes import config_type

CAPSNET = "capsnet"  # image -> scores, poses
DECODER = "capsnet_decoder"  # masked poses -> reconstruction
# The model a run's architecture is served as (a baseline CNN has no decoder beside it).
MAIN_MODEL = {"capsnet": CAPSNET, "cnn-baseline": "cnn_baseline"}
# --platform -> what config.pbtxt names: a platform, or (OpenVINO has none) a backend.
PLATFORMS = {"onnx": "onnxruntime_onnx", "trt": "tensorrt_plan", "openvino": "openvino"}
BACKENDS = {"openvino"}  # declared as `backend:`, not `platform:`
MODEL_FILES = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}
# Triton's defaults per backend; OpenVINO's is model.xml, so our configs name model.onnx.
BACKEND_FILES = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", "openvino": "model.xml"}


@dataclass
class BatchingOptions:
    """The batching and scheduling knobs Triton reads from config.pbtxt (and so do we)."""

    max_batch_size: int = 64
    instances: int = 1
    max_queue_delay_us: int = 500
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024
    default_timeout_us: int = 30_000_000
    dynamic_batching: bool = True

    def check(self) -> None:
        if self.max_batch_size < 1:
            raise UsageError("--max-batch-size must be >= 1")
        if self.instances < 1:
            raise UsageError("--instances must be >= 1")
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise UsageError(
                f"preferred batch sizes {bad} are outside 1..{self.max_batch_size} (--max-batch-size)"
            )
        if self.max_queue_delay_us < 0 or self.max_queue_size < 0 or self.default_timeout_us < 0:
            raise UsageError("queue delay, queue size and timeout must be >= 0")


@dataclass
class TensorDecl:
    name: str
    dtype: str  # numpy name
    dims: tuple[int, ...]  # without the batch dimension


@dataclass
class ModelDecl:
    name: str
    platform: str
    inputs: list[TensorDecl]
    outputs: list[TensorDecl]
    parameters: dict[str, str] = field(default_factory=dict)


def pb2():
    try:
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError) as e:  # tritonclient raises RuntimeError without grpcio
        raise UsageError(
            "reading or writing a Triton config.pbtxt needs tritonclient[grpc]: "
            "pip install 'tritonclient[grpc]'"
        ) from e
    return model_config_pb2


def model_config(decl: ModelDecl, opts: BatchingOptions):
    """A ``ModelConfig`` message for ``decl`` with ``opts``'s batching and instances."""
    pb = pb2()
    cfg = pb.ModelConfig(name=decl.name, max_batch_size=opts.max_batch_size)
    if decl.platform in BACKENDS:
        cfg.backend = decl.platform
        cfg.default_model_filename = "model.onnx"
    else:
        cfg.platform = decl.platform
    for t, target in ((decl.inputs, cfg.input), (decl.outputs, cfg.output)):
        for tensor in t:
            target.add(
                name=tensor.name, data_type=pb.DataType.Value(config_type(tensor.dtype)), dims=tensor.dims
            )
    if opts.dynamic_batching:
        db = cfg.dynamic_batching
        db.max_queue_delay_microseconds = opts.max_queue_delay_us
        db.preferred_batch_size.extend(sorted(set(opts.preferred_batch_sizes)))
        policy = db.default_queue_policy
        policy.max_queue_size = opts.max_queue_size
        policy.default_timeout_microseconds = opts.default_timeout_us
        policy.allow_timeout_override = True
        policy.timeout_action = pb.ModelQueuePolicy.REJECT
    group = cfg.instance_group.add(count=opts.instances)
    # A plan runs on a GPU; OpenVINO on the CPU; ONNX models let Triton choose (GPU where it has one).
    group.kind = {
        "tensorrt_plan": pb.ModelInstanceGroup.KIND_GPU,
        "openvino": pb.ModelInstanceGroup.KIND_CPU,
    }.get(decl.platform, pb.ModelInstanceGroup.KIND_AUTO)
    for key, value in decl.parameters.items():
        cfg.parameters[key].string_value = value
    return cfg


PLATFORM_BACKENDS = {
    "onnxruntime_onnx": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "pytorch_libtorch": "pytorch",
}


def normalize_config(cfg, on_gpu: bool = False):
    """A copy of ``cfg`` completed as Triton completes a config before serving it (and returns
    it from /config): backend and platform, default_model_filename, version_policy latest 1,
    dynamic batching's preferred_batch_size [max_batch_size], instance groups named
    ``<model>_<i>`` with KIND_AUTO resolved (KIND_GPU where the model runs on a GPU, else
    KIND_CPU) and count >= 1."""
    pb = pb2()
    out = pb.ModelConfig()
    out.CopyFrom(cfg)
    if out.platform and not out.backend and out.platform in PLATFORM_BACKENDS:
        out.backend = PLATFORM_BACKENDS[out.platform]
    if out.backend and not out.platform:
        out.platform = {b: p for p, b in PLATFORM_BACKENDS.items()}.get(out.backend, "")
    if not out.default_model_filename:
        out.default_model_filename = MODEL_FILES.get(out.platform) or BACKEND_FILES.get(out.backend, "")
    if not out.HasField("version_policy"):
        out.version_policy.latest.num_versions = 1
    if (
        out.HasField("dynamic_batching")
        and not out.dynamic_batching.preferred_batch_size
        and out.max_batch_size > 0
    ):
        out.dynamic_batching.preferred_batch_size.append(out.max_batch_size)
    if not out.instance_group:
        out.instance_group.add(name=out.name)
    for i, group in enumerate(out.instance_group):
        if not group.name:
            group.name = f"{out.name}_{i}"
        if group.kind == pb.ModelInstanceGroup.KIND_AUTO:
            group.kind = pb.ModelInstanceGroup.KIND_GPU if on_gpu else pb.ModelInstanceGroup.KIND_CPU
        if group.count < 1:
            group.count = 1
        if group.kind == pb.ModelInstanceGroup.KIND_GPU and not group.gpus and on_gpu:
            group.gpus.append(0)
    return out


def render_config(cfg) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def parse_config(text: str, source: str = "config.pbtxt"):
    """Parse with Triton's schema; a typo or an unknown field is a UsageError naming it."""
    from google.protobuf import text_format

    pb = pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as e:
        raise UsageError(f"{source}: not a valid Triton ModelConfig: {e}") from e


def config_to_json(cfg) -> dict:
    """The config as Triton's ``/config`` endpoint renders it: proto field names, every
    field present, enums by name, and 64-bit integers as JSON numbers (not strings)."""
    from google.protobuf.json_format import MessageToDict

    raw = MessageToDict(cfg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return _int64_as_numbers(cfg.DESCRIPTOR, raw)


_INT64 = {3, 4, 6, 16, 18}  # FieldDescriptor.TYPE_INT64, UINT64, FIXED64, SFIXED64, SINT64


def _int64_as_numbers(descriptor, value):
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        fd = descriptor.fields_by_name.get(key)
        if fd is None:
            out[key] = v
        elif fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            out[key] = {k: _convert(value_fd, x) for k, x in v.items()}
        elif isinstance(v, list):
            out[key] = [_convert(fd, x) for x in v]
        else:
            out[key] = _convert(fd, v)
    return out


def _convert(fd, v):
    if fd.message_type is not None:
        return _int64_as_numbers(fd.message_type, v)
    if fd.type in _INT64 and isinstance(v, str):
        return int(v)
    return v
