"""OpenVINO settings <-> the ``config.pbtxt`` parameters Triton's OpenVINO backend reads.

Triton's openvino backend (triton-inference-server/openvino_backend, src/openvino.cc,
``ParseParameters``) reads PERFORMANCE_HINT, NUM_STREAMS, INFERENCE_NUM_THREADS,
COMPILATION_NUM_THREADS, HINT_BF16 (only "YES"), SKIP_OV_DYNAMIC_BATCHSIZE,
ENABLE_BATCH_PADDING, RESHAPE_IO_LAYERS and TARGET_DEVICE, and ignores other keys. It loads
``model.xml`` unless ``default_model_filename`` names another file (``model.onnx`` here).

Two facts of that backend shape what we write:
- With ``max_batch_size`` > 0 it fixes the model's batch to max_batch_size (``ov::set_batch``)
  and answers any smaller batch with an error unless ENABLE_BATCH_PADDING is YES; dynamic
  batching forms smaller batches, so we write YES (Triton pads to max_batch_size; `capsdeploy
  serve` runs the real batch, its OpenVINO model keeps a dynamic batch).
- It can ask for bf16 (HINT_BF16) but not pin f32: on CPUs with AVX512-BF16 or AMX, OpenVINO's
  default inference precision is bf16. ``capsdeploy.ov.inference_precision`` carries our choice
  for `capsdeploy serve` (Triton ignores it; docs/bench.md says so).
"""

from __future__ import annotations

PRECISION_KEY = "capsdeploy.ov.inference_precision"


def triton_parameters(options: dict) -> dict[str, str]:
    """OvBackend options (inference_precision, performance_hint, streams, threads) -> parameters."""
    params = {"ENABLE_BATCH_PADDING": "YES"}
    if options.get("performance_hint"):
        params["PERFORMANCE_HINT"] = str(options["performance_hint"]).upper()
    if options.get("streams") is not None:
        params["NUM_STREAMS"] = str(options["streams"]).upper()
    if options.get("threads"):
        params["INFERENCE_NUM_THREADS"] = str(int(options["threads"]))
    precision = options.get("inference_precision")
    if precision == "bf16":
        params["HINT_BF16"] = "YES"
    params[PRECISION_KEY] = precision or "default"
    return params


def options_from_parameters(params: dict[str, str]) -> dict:
    """The inverse: what `capsdeploy serve` gives OvBackend for a model Triton's backend would load."""
    opts: dict = {"performance_hint": params.get("PERFORMANCE_HINT") or None}
    if params.get("NUM_STREAMS"):
        streams = params["NUM_STREAMS"]
        opts["streams"] = int(streams) if streams.isdigit() else streams.upper()
    if params.get("INFERENCE_NUM_THREADS"):
        opts["threads"] = int(params["INFERENCE_NUM_THREADS"])
    precision = params.get(PRECISION_KEY)
    if params.get("HINT_BF16", "").upper() == "YES":
        precision = "bf16"
    opts["inference_precision"] = None if precision in (None, "default") else precision
    return opts
