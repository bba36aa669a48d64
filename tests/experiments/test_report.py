"""`capsdeploy report`: one Markdown page whose numbers are the runs' and the tests' own."""

import json

from tests.helpers import capsdeploy


def test_report_tables_and_pictures(tiny_run, tmp_path):
    from capsdeploy.model.checkpoint import load_run

    out = tmp_path / "rep"
    result = json.loads(
        capsdeploy("report", tiny_run, "--out", out, "--max-samples", 40, "--json", "-", check=True).stdout
    )
    text = (out / "report.md").read_text()
    model, _ = load_run(tiny_run)
    row = result["runs"][0]
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert f"{row['parameters']:,}" in text and "| capsnet |" in text
    assert result["affine"] is None and result["multimnist"] is None  # a 28x28 single-digit run
    for name in result["figures"]:
        assert (out / name).stat().st_size > 1000 and f"]({name})" in text
    assert len(result["figures"]) == 2  # reconstructions and dimensions


def test_report_refuses_a_non_empty_folder_and_leaves_it_alone(tiny_run, tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = capsdeploy("report", tiny_run, "--out", out, "--no-pictures")
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep.")]  # no staging left behind
