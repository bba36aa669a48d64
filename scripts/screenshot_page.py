"""Screenshot the serving page for the README: serve REPO, draw a 7, nudge one pose dimension.

    python scripts/screenshot_page.py runs/mnist-repo docs/img/serve-page.png

Needs Debian's chromium and playwright (the test extras); starts `capsdeploy serve` itself.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from capsdeploy.serve.process import ServerProcess


def main(repo: str, out: str) -> None:
    from playwright.sync_api import sync_playwright

    tmp = Path(out).parent
    tmp.mkdir(parents=True, exist_ok=True)
    srv = ServerProcess.start([repo, "--engine", "ort", "--drain-delay", "0"], tmp)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1180, "height": 760}, device_scale_factor=1)
            page.goto(srv.url + "/")
            page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
            box = page.locator("#pad").bounding_box()
            x, y = box["x"], box["y"]
            strokes = [[(70, 60), (210, 60)], [(210, 60), (120, 240)]]  # a 7
            for stroke in strokes:
                (x0, y0), (x1, y1) = stroke
                page.mouse.move(x + x0, y + y0)
                page.mouse.down()
                for i in range(1, 31):
                    page.mouse.move(x + x0 + (x1 - x0) * i / 30, y + y0 + (y1 - y0) * i / 30)
                page.mouse.up()
                page.wait_for_timeout(400)
            page.wait_for_function("Number(document.body.dataset.decodes) >= 2", timeout=30_000)
            page.locator("#sliders input").nth(5).evaluate(
                "(s) => { s.value = 0.2; s.dispatchEvent(new Event('input')); }"
            )
            page.wait_for_timeout(800)
            page.screenshot(path=out, full_page=True)
            browser.close()
    finally:
        srv.stop()
        srv.log.unlink(missing_ok=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
