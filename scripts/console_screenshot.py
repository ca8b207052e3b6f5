"""Take docs/console-case.png: a case page of the review console, as a reviewer sees it in Chromium.

    python scripts/console_screenshot.py [--row blair-multi] [--out docs/console-case.png]

Sets up the same data as tests/test_console_browser.py in a temporary directory: ``facecompare batch
--queue-review --queue-no-match`` over rows of tests/fixtures into a SQLite store, a reviewer account (``facecompare
reviewer add``), ``facecompare serve`` on a free loopback port; then signs in with Playwright driving Debian's
Chromium (``/usr/bin/chromium``; nothing is downloaded), opens the case of ``--row`` in a 1400 px wide window and
saves a full-page screenshot, reduced to a palette PNG when it is larger than ``--max-kb``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
ROWS = {
    "blair-multi": ("Tony_Blair_0001.jpg", "Colin_Powell_0001.jpg"),  # REVIEW: MULTIPLE_FACES_IN_SELFIE
    "two-people": ("two_people.jpg", "obama.jpg"),  # REVIEW: MULTIPLE_FACES_IN_SELFIE
    "serena-back": ("Serena_Williams_0001.jpg", "id_back_mrz_only_che.jpg"),  # REVIEW: NO_FACE_ON_DOCUMENT
    "obama-biden": ("obama.jpg", "biden.jpg"),  # NO_MATCH
}
REVIEWER, PASSWORD = "reviewer", "screenshot-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(env: dict, *args: str, stdin: str | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "facecompare.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=300)
    if done.returncode:
        raise SystemExit(f"facecompare {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")


def setup(root: Path) -> tuple[dict, dict[str, str]]:
    """The queue in ``root``; returns the environment and the case id of each row."""
    import facecompare

    src = str(Path(facecompare.__file__).resolve().parents[1])
    env = {**os.environ, "FACECOMPARE_COLLECTIONS": f"sqlite:///{root / 'review.db'}",
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    env.pop("FACECOMPARE_REVIEW_RETENTION_DAYS", None)
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "selfie", "document"])
        for row_id, (selfie, document) in ROWS.items():
            writer.writerow([row_id, FIXTURES / selfie, FIXTURES / document])
    run(env, "batch", str(manifest), "--out", str(root / "batch"), "--queue-review", "--queue-no-match",
        "--workers", "1", "--no-progress")
    run(env, "reviewer", "add", REVIEWER, "--password-stdin", stdin=PASSWORD + "\n")
    from facecompare.review.service import open_queue

    queue = open_queue(env["FACECOMPARE_COLLECTIONS"], environ={})
    try:
        cases = {c.reference: c.case_id for c in queue.store.iter_cases(queue.case_filter("all"))}
    finally:
        queue.store.close()
    results = [json.loads(line) for line in (root / "batch" / "results.jsonl").read_text().splitlines()]
    print("queued:", ", ".join(f"{r['id']} ({r['decision']} {' '.join(r['reasons'])})" for r in results
                               if r["id"] in cases))
    return env, cases


def serve(root: Path, env: dict) -> tuple[subprocess.Popen, str]:
    from facecompare.server.app import hash_api_key

    keys = root / "api-keys"
    keys.write_text(f"screenshot:{hash_api_key(secrets.token_urlsafe(24))}\n")
    port = free_port()
    server_env = {**env, "FACECOMPARE_AUTH_KEYS": f"AKIDSCREENSHOT:{secrets.token_urlsafe(24)}",
                  "FACECOMPARE_API_KEYS_FILE": str(keys)}
    log = open(root / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "facecompare.cli", "serve", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=log, env=server_env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        if process.poll() is not None:
            raise SystemExit("facecompare serve exited: " + (root / "serve.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            pass
        if time.time() > deadline:
            process.kill()
            raise SystemExit("facecompare serve was not ready in 120 s")
        time.sleep(0.3)


def screenshot(url: str, case_id: str, width: int) -> bytes:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(base_url=url, viewport={"width": width, "height": 900})
            page.goto("/console/login")
            page.fill("input[name=username]", REVIEWER)
            page.fill("input[name=password]", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit].primary")
            page.goto(f"/console/cases/{case_id}")
            for selector in ("#selfie-image", "#document-image"):
                page.locator(selector).evaluate("img => img.decode()")
            page.locator("#comment").fill("not the same person: nose, hairline and ears differ; the second face is a bystander")
            page.evaluate("document.activeElement.blur()")
            return page.screenshot(full_page=True)
        finally:
            browser.close()


def shrink(png: bytes, max_kb: int) -> bytes:
    """The PNG as it is when small enough, else as a 256-colour palette PNG (the page is mostly flat colour)."""
    if len(png) <= max_kb * 1024:
        return png
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", default="blair-multi", choices=sorted(ROWS), help="the batch row whose case is shown")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console-case.png")
    parser.add_argument("--width", type=int, default=1400, help="the window's width in CSS pixels (default 1400)")
    parser.add_argument("--max-kb", type=int, default=400, help="reduce the PNG's colours above this size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-screenshot-") as tmp:
        root = Path(tmp)
        env, cases = setup(root)
        if args.row not in cases:
            raise SystemExit(f"row {args.row} was not queued for review")
        process, url = serve(root, env)
        try:
            png = shrink(screenshot(url, cases[args.row], args.width), args.max_kb)
        finally:
            process.terminate()
            process.wait(15)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)
    print(f"Wrote {args.out} ({len(png) // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
