"""How close to the hardware: the model's arithmetic per image, and a peak measured here.

FLOPs are counted from the model's configuration (multiply-adds x 2): the two convolutions,
the prediction vectors and the routing iterations; squash, softmax and biases are a rounding
error beside them. The peak is a large FP32 GEMM through NumPy's BLAS on every core, the
best a dense FP32 kernel gets on this machine; INT8 engines can exceed it.
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
