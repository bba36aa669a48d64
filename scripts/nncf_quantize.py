"""OpenVINO's own post-training quantization (NNCF) of a capsdeploy FP32 export, for the lever
table of docs/results.md: NNCF against our Q/DQ file, both run by OpenVINO, in one `bench` run.

NNCF is not a capsdeploy dependency (it pulls scikit-learn, scipy, networkx, ...); run this in
a separate environment with nncf, openvino, onnxruntime and tqdm installed:

    python scripts/nncf_quantize.py FP32.onnx OUT.xml --data-dir ../shared/data/mnist [--samples 256]

It calibrates on the first N images of the run's training split (as `export --precision int8`
does: 256 in `bench`), writes OpenVINO IR with the file's capsdeploy metadata (precision int8), so
`capsdeploy bench engines --model ov-int8=OUT.xml` runs it on OpenVINO beside our files.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import nncf
import numpy as np
import onnx
import openvino as ov

from capsdeploy.contract import ModelMetadata
from capsdeploy.data import load_split
from capsdeploy.data.preprocess import prepare_batch
from capsdeploy.runtime.ov_backend import RT_INFO_KEY

# Graph plumbing NNCF must still see through (ignoring a Parameter or Result is an error).
NEUTRAL = {"Parameter", "Result", "Constant"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp32")
    ap.add_argument("out")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--split", default="digits10k")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--ignore-matmuls", action="store_true", help="quantize the convolutions only")
    args = ap.parse_args()
    model = onnx.load(args.fp32)
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMetadata.from_props(props)
    if meta is None or meta.precision != "fp32":
        raise SystemExit(f"{args.fp32}: not an FP32 capsdeploy export")
    data = load_split("mnist", args.split, args.data_dir, download=False, limit=args.samples)
    batches = [
        prepare_batch(data.images[i : i + 32], meta.input_dtype, meta.normalization)
        for i in range(0, len(data.images), 32)
    ]
    model = ov.Core().read_model(args.fp32)
    # NNCF's defaults also quantize the inputs of element-wise ops (squash's norms and divisions),
    # which breaks capsule lengths near zero (NaN poses, 8% accuracy on this model): keep them
    # float and let NNCF place its quantizers on the convolutions (and MatMuls unless ignored).
    keep = {"Convolution"} | (set() if args.ignore_matmuls else {"MatMul"})
    ignored = nncf.IgnoredScope(types=sorted({op.get_type_name() for op in model.get_ops()} - keep - NEUTRAL))
    # NNCF's OpenVINO path: its ONNX path cannot place a quantizer on an edge that is also a graph
    # output (`poses` feeds `scores`), and OpenVINO is what runs the result anyway.
    q = nncf.quantize(
        model,
        nncf.Dataset(batches, lambda b: {"image": np.ascontiguousarray(b)}),
        subset_size=len(batches),  # NNCF counts dataset items: batches of 32
        ignored_scope=ignored,
    )
    # The IR carries capsdeploy's metadata (precision int8) in its rt_info, where OvBackend reads it.
    q.set_rt_info(json.dumps(replace(meta, precision="int8").to_props()), [RT_INFO_KEY])
    ov.save_model(q, args.out)
    print(f"wrote {args.out}: NNCF INT8 of {args.fp32} ({len(data.images)} calibration images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
