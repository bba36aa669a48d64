"""A tune result is this machine's only when the CPU model, its speed-deciding flags and the
cores this process may use all match: streams and threads were chosen for that core count."""

import pytest

from capsdeploy.envinfo import cpu_info
from capsdeploy.errors import UsageError
from capsdeploy.runtime.tuned import check_same_cpu

ZEN5 = {"cpu_model": "AMD EPYC 9R45", "cpu_flags": ["avx2", "avx512f", "avx512_vnni"], "cores": 2}


def test_this_machine_reports_the_cores_it_may_use():
    import os

    assert cpu_info()["cores"] == len(os.sched_getaffinity(0))


def test_the_same_cpu_with_other_cores_is_refused_naming_both_counts():
    with pytest.raises(UsageError) as e:
        check_same_cpu(ZEN5, "tune.json", here={**ZEN5, "cores": 16})
    assert "with 2 usable cores" in str(e.value) and "with 16 usable cores" in str(e.value)


def test_the_same_cpu_and_cores_pass_and_a_file_without_cores_is_judged_on_model_and_flags():
    check_same_cpu(ZEN5, "tune.json", here=dict(ZEN5))
    old_file = {k: v for k, v in ZEN5.items() if k != "cores"}
    check_same_cpu(old_file, "tune.json", here={**ZEN5, "cores": 16})
    with pytest.raises(UsageError, match="AMD EPYC 7B13"):
        check_same_cpu(old_file, "tune.json", here={**ZEN5, "cpu_model": "AMD EPYC 7B13"})
