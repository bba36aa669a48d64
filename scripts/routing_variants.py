"""Two routing formulations tried against the shipped one (issue 16's lever "a routing formulation
OpenVINO fuses better"), measured in one `capsdeploy bench engines` run; neither was kept.

- ``gemm``: never materialize the predictions u_hat ([B, 1152, 10, 16], 23.6 MB at batch 32).
  The first iteration's uniform coupling makes s one GEMM of u [B, 1152*8] with the weights; later
  iterations compute s = (c * u) @ W_p and the agreement u . (W_p^T v) per parent, all in a
  [parents, batch, ...] layout with no large transpose. Half the memory traffic of u_hat, but
  every iteration is GEMM-sized work where the shipped routing does a reduction.
- ``broadcast``: compute u_hat straight into routing's [B, parents, children, D] layout with one
  broadcast MatMul ([B,1,C,1,8] @ [1,P,C,8,16]), removing the transpose OpenVINO runs as a pass
  of its own.

Both equal the shipped graph up to float rounding (checked here on real digits before timing).

    python scripts/routing_variants.py runs/mnist [--data-dir ../shared/data/mnist] [--batch-sizes 8,16,32]

Run it on a quiet machine. The variants replace DigitCaps.forward in this process only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from capsdeploy.data import load_split
from capsdeploy.export.onnx_export import ExportOptions, export_onnx
from capsdeploy.model import capsnet
from capsdeploy.model.checkpoint import load_run
from capsdeploy.model.routing import route_parent_major
from capsdeploy.model.squash import squash


def forward_gemm(self, u):
    C, K, PD = self.weight.shape
    P, D = self.parents, self.dim
    W = self.weight.float()
    w_flat = W.reshape(C * K, PD)  # [CK, P*D]
    w_p = W.reshape(C * K, P, D).permute(1, 0, 2)  # [P, CK, D]
    u = u.float()
    b = None
    for i in range(self.iterations):
        if b is None:  # uniform coupling 1/P: one GEMM over every child
            s = (u.reshape(-1, C * K) @ w_flat).reshape(-1, P, D).transpose(0, 1) / P  # [P, B, D]
        else:
            c = torch.softmax(b, dim=0)  # [P, B, C]
            s = torch.matmul((c.unsqueeze(-1) * u.unsqueeze(0)).reshape(P, -1, C * K), w_p)
        v = squash(s, dim=-1, eps=self.eps)
        if i < self.iterations - 1:
            wv = torch.matmul(v, w_p.transpose(1, 2)).reshape(P, -1, C, K)  # [P, B, C, K]
            a = (wv * u.unsqueeze(0)).sum(-1)  # agreement [P, B, C]
            b = a if b is None else b + a
    return v.transpose(0, 1), None


def forward_broadcast(self, u):
    C, K, _ = self.weight.shape
    P, D = self.parents, self.dim
    w = self.weight.float().reshape(C, K, P, D).permute(2, 0, 1, 3)  # [P, C, K, D]
    pred = (u.float()[:, None, :, None, :] @ w[None]).squeeze(3)  # [B, P, C, D]
    return route_parent_major(pred, self.iterations, self.detach_inner, self.eps)


VARIANTS = {"shipped": None, "gemm": forward_gemm, "broadcast": forward_broadcast}


@contextlib.contextmanager
def digitcaps_forward(forward):
    shipped = capsnet.DigitCaps.forward
    if forward is not None:
        capsnet.DigitCaps.forward = forward
    try:
        yield
    finally:
        capsnet.DigitCaps.forward = shipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data-dir", default="../shared/data/mnist")
    ap.add_argument("--batch-sizes", default="8,16,32")
    ap.add_argument("--duration-s", default="3")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    model, _ = load_run(args.run)
    images = load_split("mnist", "t10k", args.data_dir, limit=512).images
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)  # the run's scaling
    with torch.no_grad():
        ref = model.eval()(x)[1]
        for name, forward in VARIANTS.items():
            with digitcaps_forward(forward):
                err = (model(x)[1] - ref).abs().max().item()
            print(f"{name}: poses max abs difference from the shipped routing on 512 test digits {err:.1e}")
            assert err < 1e-5, f"{name} does not compute the shipped routing"

    with tempfile.TemporaryDirectory() as tmp:
        models = []
        for name, forward in VARIANTS.items():
            with digitcaps_forward(forward):
                export_onnx(args.run, f"{tmp}/{name}-fp32.onnx", ExportOptions())
                export_onnx(
                    args.run,
                    f"{tmp}/{name}-int8.onnx",
                    ExportOptions(precision="int8", data_dir=args.data_dir),
                )
            models += [f"ov-int8={tmp}/{name}-int8.onnx", f"ov={tmp}/{name}-fp32.onnx"]
        cmd = [
            *(sys.executable, "-m", "capsdeploy", "bench", "engines", "--checkpoint", args.run),
            *("--model", ",".join(models), "--batch-sizes", args.batch_sizes),
            *("--duration-s", args.duration_s, "--accuracy-samples", "-1"),
            *("--dataset", "mnist", "--data-dir", args.data_dir, "--json", "-"),
        ]
        print("$", " ".join(cmd), flush=True)
        report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    rows = report["results"]
    base = {(r["engine"].split(":")[0], r["batch"]): r for r in rows if ":shipped-" in r["engine"]}
    print("\n| engine:file | batch | img/s | x shipped routing, same engine | accuracy |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        b = base[(r["engine"].split(":")[0], r["batch"])]
        ratio = r["images_per_second"] / b["images_per_second"]
        print(
            f"| {r['engine']} | {r['batch']} | {r['images_per_second']:.0f} | {ratio:.2f} | {r['accuracy']:.2%} |"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
