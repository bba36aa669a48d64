"""The page in a real headless browser (Debian's chromium driven by Playwright; nothing is
downloaded): drawing a stroke shows ten bars, a slider changes the reconstruction."""

import os
import shutil

import pytest

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        if IN_CI:
            pytest.fail("CI=true but chromium or playwright is missing (.ci/run installs them)")
        pytest.skip("needs Debian's chromium (apt-get install -y chromium) and playwright")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


def test_draw_a_digit_then_steer_its_capsule(server, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
    assert page.locator("#bars .bar .value").first.inner_text() == "-"

    box = page.locator("#pad").bounding_box()
    x, y = box["x"], box["y"]
    page.mouse.move(x + 140, y + 40)
    page.mouse.down()
    for i in range(1, 21):  # a vertical stroke: a "1"
        page.mouse.move(x + 140 + i, y + 40 + 10 * i)
    page.mouse.up()
    page.wait_for_function("document.body.dataset.decodes === '1'", timeout=20_000)

    values = page.locator("#bars .bar .value").all_inner_texts()
    assert len(values) == 10 and all(0.0 <= float(v) <= 1.0 for v in values)
    assert page.locator("#bars .bar.win").count() == 1
    sliders = page.locator("#sliders input[type=range]")
    assert sliders.count() == 8  # the tiny model's pose has 8 dimensions (the paper's: 16)

    def recon_pixels():
        return page.evaluate(
            "Array.from(document.getElementById('recon').getContext('2d').getImageData(0, 0, 196, 196).data)"
        )

    before = recon_pixels()
    assert any(v not in (0, 255) for v in before[::4])  # a drawn reconstruction, not a blank canvas
    first = sliders.nth(0)
    first.evaluate("(s) => { s.value = 0.25; s.dispatchEvent(new Event('input')); }")
    page.wait_for_function("Number(document.body.dataset.decodes) >= 2", timeout=20_000)
    after = recon_pixels()
    changed = sum(a != b for a, b in zip(before, after, strict=True))
    assert changed > 0, "moving a pose slider did not change the reconstruction"
    assert not errors, errors
    page.close()


def test_a_baseline_cnn_gets_scores_and_no_sliders(browser, tmp_path):
    """The page finds a repository's cnn_baseline model and shows its probabilities alone."""
    from capsdeploy.model import BaselineCNN, CNNConfig
    from capsdeploy.model.checkpoint import build_config_doc, default_normalization, save_run
    from tests.helpers.serving import export_repo, start_server

    cfg = CNNConfig(conv_channels=(4, 4, 2), hidden=(8, 8))
    doc = build_config_doc(cfg, [str(i) for i in range(10)], default_normalization(1),
                           dataset={"name": "synthetic", "test_split": "t10k"})  # fmt: skip
    repo = export_repo(save_run(tmp_path / "cnn", BaselineCNN(cfg), doc), tmp_path / "repo")
    (tmp_path / "srv").mkdir()
    srv = start_server([repo, "--engine", "ort"], tmp_path / "srv")
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(srv.url + "/")
        page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
        box = page.locator("#pad").bounding_box()
        page.mouse.move(box["x"] + 140, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 150, box["y"] + 200)
        page.mouse.up()
        page.wait_for_function("document.body.dataset.predictions === '1'", timeout=20_000)
        values = [float(v) for v in page.locator("#bars .bar .value").all_inner_texts()]
        assert abs(sum(values) - 1.0) < 0.01  # softmax probabilities (printed to 3 decimals)
        assert "probability" in page.locator("#verdict").inner_text()
        assert page.locator("#sliders input[type=range]").count() == 0 and not errors
    finally:
        assert srv.stop() == 0
