"""How close to the hardware: the model's arithmetic per image, and a peak measured here.

FLOPs are counted from the model's configuration (multiply-adds x 2): the two convolutions,
the prediction vectors and the routing iterations; squash, softmax and biases are a rounding
error beside them. The peak is a large FP32 GEMM through NumPy's BLAS on every core, the
best a dense FP32 kernel gets on this machine; INT8 engines can exceed it, so they are also
measured against an INT8 reference: the best of a few large u8 x s8 GEMMs through OpenVINO
(oneDNN's VNNI or AMX kernels), what integer arithmetic reaches here in the kernels that also
run the INT8 convolutions dominating these engines (a convolution's kernel can beat it). GPU engines
are measured against the GPU's own FP32 GEMM peak (torch, TF32 off), never against the CPU's.
"""

from __future__ import annotations

import time

import numpy as np


def capsnet_flops(model_cfg: dict, routing_iters: int | None = None) -> int:
    """FLOPs of one image through conv1, PrimaryCaps, the predictions and routing."""
    c = model_cfg
    iters = routing_iters or c["routing_iters"]
    s1 = c["image_size"] - c["conv1_kernel"] + 1
    conv1 = s1 * s1 * c["conv1_channels"] * c["in_channels"] * c["conv1_kernel"] ** 2
    s2 = (s1 - c["primary_kernel"]) // c["primary_stride"] + 1
    primary_out = c["primary_caps"] * c["primary_dim"]
    primary = s2 * s2 * primary_out * c["conv1_channels"] * c["primary_kernel"] ** 2
    children = s2 * s2 * c["primary_caps"]
    parent_numel = c["num_classes"] * c["digit_dim"]
    predictions = children * c["primary_dim"] * parent_numel
    routing = (2 * iters - 1) * children * parent_numel  # weighted sums, and agreements but the last
    return 2 * (conv1 + primary + predictions + routing)


def peak_gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` FP32 GEMM throughput (n x n x n) in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b  # warm the BLAS threads
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def peak_int8_gemm_gops(sizes: tuple[int, ...] = (1024, 2048, 4096), repeats: int = 3) -> float | None:
    """The best INT8 GEMM throughput among square sizes ``sizes`` (n x n x n multiply-adds, x 2),
    in GOP/s: QuantizeLinear -> DequantizeLinear -> MatMul against INT8 weights, UINT8 activations
    (u8 x s8, the operand types of VNNI's and AMX's integer instructions), which OpenVINO runs as
    one integer GEMM, as it runs our Q/DQ files' convolutions. A reference, not a hardware bound:
    a convolution's kernel can beat it. None without OpenVINO, or where OpenVINO does not run the
    GEMM in integers (then there is no INT8 path to compare with)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    best = 0.0
    for n in sizes:
        request = _int8_gemm_request(core, n)
        if request is None:
            return None
        x = np.random.default_rng(1).random((n, n), dtype=np.float32)
        request.infer({0: x})  # warm the threads
        fastest = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            request.infer({0: x})
            fastest = min(fastest, time.perf_counter() - t0)
        best = max(best, 2 * n**3 / fastest / 1e9)
    return best


def _int8_gemm_request(core, n: int):
    from onnx import TensorProto, helper, numpy_helper

    consts: dict[str, np.ndarray] = {
        "xs": np.array(1 / 255, np.float32),
        "xz": np.array(0, np.uint8),  # inputs in [0, 1): UINT8 activations, as the CPU-targeted files
        "w": np.random.default_rng(0).integers(-127, 128, (n, n)).astype(np.int8),
        "ws": np.array(0.01, np.float32),
    }
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
            helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"]),
            helper.make_node("MatMul", ["xd", "wd"], ["y"]),
        ],
        "int8_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    compiled = core.compile_model(
        core.read_model(proto.SerializeToString(), b""), "CPU", {"PERFORMANCE_HINT": "LATENCY"}
    )
    gemms = [
        op
        for op in compiled.get_runtime_model().get_ops()
        if op.get_rt_info()["layerType"].astype(str) in ("FullyConnected", "MatMul")
    ]
    precisions = {op.get_rt_info()["runtimePrecision"].astype(str) for op in gemms}
    if not gemms or not precisions <= {"u8", "i8"}:
        return None
    return compiled.create_infer_request()


GPU_RUNTIMES = ("torch-cuda", "ort-cuda", "trt")


def peak_gemm_gflops_cuda(n: int = 8192, repeats: int = 5) -> float | None:
    """Best-of-``repeats`` FP32 GEMM throughput on the current CUDA device with TF32 off (true
    FP32, as our FP32 engines compute), timed with CUDA events; None without torch or CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    allow = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.rand((n, n), device="cuda")
        b = torch.rand((n, n), device="cuda")
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow
    return 2 * n**3 / best / 1e9


def add_peak_fractions(rows: list[dict], cpu_peak: float, int8_peak: float | None = None) -> float | None:
    """Fill ``gflop_per_image``, ``effective_gflops`` and ``fraction_of_fp32_peak`` from each
    row's ``_flops``: CPU engines against ``cpu_peak``, GPU engines against the GPU's peak
    (measured once, only when a GPU row has FLOPs; the fraction is None where none could be
    measured). CPU INT8 rows also get ``fraction_of_int8_peak`` against ``int8_peak`` when given.
    Returns the GPU peak used, or None."""
    measured = None
    if any(r.get("_flops") and r["runtime"] in GPU_RUNTIMES for r in rows):
        measured = peak_gemm_gflops_cuda()
    for r in rows:
        flops = r.pop("_flops", None)
        gflops = flops * r["images_per_second"] / 1e9 if flops else None
        peak = measured if r["runtime"] in GPU_RUNTIMES else cpu_peak
        r["gflop_per_image"] = round(flops / 1e9, 4) if flops else None
        r["effective_gflops"] = round(gflops, 3) if gflops is not None else None
        r["fraction_of_fp32_peak"] = round(gflops / peak, 4) if gflops is not None and peak else None
        if is_cpu_int8(r) and gflops is not None and int8_peak:
            r["fraction_of_int8_peak"] = round(gflops / int8_peak, 4)
    return measured


def is_cpu_int8(row: dict) -> bool:
    """A CPU engine running an INT8 file (named, like ov-int8, or given with --model)."""
    int8 = row.get("precision") == "int8" or row.get("file_precision") == "int8"
    return int8 and row["runtime"] not in GPU_RUNTIMES
