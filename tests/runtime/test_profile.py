"""bench --profile: the engines' per-node counters grouped into the graph's phases."""

from collections import Counter

import pytest

from capsdeploy.bench.profile import PHASES, graph_phases, profile_ort, profile_ov


@pytest.fixture(scope="module")
def fp32(tiny_export, tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("prof") / "m.onnx"
    tiny_export(path)
    return path


def test_every_node_has_its_phase_by_position(fp32):
    counts = Counter(graph_phases(fp32).values())
    assert counts["primary conv"] == 1 and counts["prediction MatMul"] == 1
    assert counts["conv1"] >= 2 and counts["u_hat transpose"] >= 1 and counts["routing"] > 10  # conv + relu


@pytest.mark.parametrize("profile", [profile_ov, profile_ort])
def test_the_engines_counters_land_in_the_graphs_phases(fp32, profile):
    ms = profile(fp32, batch=4, iters=3)
    assert set(ms) == set(PHASES)
    named = sum(v for k, v in ms.items() if k != "other")
    assert ms["primary conv"] > 0 and ms["routing"] > 0 and named > ms["other"]
