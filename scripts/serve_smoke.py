"""Serve a model repository, send it one V2 request and one image, then stop it with SIGTERM.

    python scripts/serve_smoke.py runs/quickstart/repo

Standard library HTTP only (no tritonclient needed); exits non-zero if anything is off.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import urllib.request

import numpy as np
from PIL import Image

from capsdeploy.data import load_split
from capsdeploy.data.preprocess import normalize
from capsdeploy.serve.process import ServerProcess


def post(url: str, body: bytes, content_type: str) -> dict:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def main(repo: str) -> int:
    image = load_split("synthetic", "t10k", limit=1).images[0, 0]  # uint8 [28, 28]
    with tempfile.TemporaryDirectory() as logs:
        srv = ServerProcess.start([repo, "--engine", "ort", "--drain-delay", "0"], logs)
        try:
            meta = json.loads(urllib.request.urlopen(srv.url + "/v2/models/capsnet", timeout=30).read())
            spec = meta["inputs"][0]
            config = json.loads(
                urllib.request.urlopen(srv.url + "/v2/models/capsnet/config", timeout=30).read()
            )
            norm = json.loads(config["parameters"]["capsdeploy.normalization"]["string_value"])
            x = normalize(image[None, None], norm) if spec["datatype"] == "FP32" else image
            doc = {"inputs": [{**spec, "shape": [1, 1, 28, 28], "data": x.ravel().tolist()}]}
            out = post(srv.url + "/v2/models/capsnet/infer", json.dumps(doc).encode(), "application/json")
            scores = out["outputs"][0]["data"]
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            top = post(srv.url + "/v1/predict?top=1", buf.getvalue(), "image/png")["predictions"][0]
        finally:
            code = srv.stop()
    print(
        f"V2 infer: class {int(np.argmax(scores))}; /v1/predict: class {top['class']} "
        f"(capsule length {top['capsule_length']:.3f}); server drained and exited {code}"
    )
    return 0 if code == 0 and str(int(np.argmax(scores))) == top["class"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
