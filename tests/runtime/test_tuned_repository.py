"""A tuned repository does not only name its engine: the settings that were timed (hint, streams,
instances) are the ones the served engine is compiled with."""

import json

from capsdeploy.bench.tune import Candidate, tune
from tests.helpers import capsdeploy

# The two-stream candidate is "fastest" (timings injected: speed is measured by benchmarks).
SPEED = {"ov": 100.0, "ov x2 streams": 500.0}


def test_the_served_engine_runs_with_the_tuned_hint_and_streams(tiny_run, tmp_path):
    from capsdeploy.serve.models import load_repository

    x2 = Candidate("ov x2 streams", "ov", options=(("performance_hint", "THROUGHPUT"), ("streams", 2)), instances=2)
    report = tune(
        str(tiny_run), [Candidate("ov", "ov"), x2], samples=16, batch_sizes=(1, 4), dataset="synthetic",
        timer=lambda c, b, f, n: {"images_per_second": SPEED[c.label], "latency_ms_p50": 1e3 / SPEED[c.label]},
    ).to_dict()  # fmt: skip
    assert report["winners"]["throughput"]["label"] == "ov x2 streams"
    (tmp_path / "tune.json").write_text(json.dumps(report))
    repo = tmp_path / "repo"
    capsdeploy(
        "export", "--format", "triton", "--checkpoint", tiny_run, "--tuned", tmp_path / "tune.json",
        "--output", repo, check=True,
    )  # fmt: skip
    models = load_repository(repo, "auto")
    try:
        compiled = models["capsnet"].backend.compiled
        assert int(compiled.get_property("NUM_STREAMS")) == 2
        assert str(compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"  # untuned: LATENCY
        assert "float32" in models["capsnet"].backend.inference_precision  # pinned, not OpenVINO's bf16
        assert len(models["capsnet"].batcher._workers) == 2  # two instances: two callers, two streams
    finally:
        for m in models.values():
            m.close(0)
