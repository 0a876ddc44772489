"""A real browser: JupyterLab in headless Chromium runs a widget notebook, a slider moves, the preview
changes.

Run with ``make test-browser`` (not part of ``make test``: it needs Debian's
``chromium``, ``apt-get install -y chromium``). The JupyterLab server runs
headless on a free localhost port with a fixed token, in fast mode and
offline; Playwright drives the system Chromium (``INTROSPECT_LAB_CHROMIUM``,
default ``/usr/bin/chromium``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/05_activation_maximization.ipynb"
CHROMIUM = os.environ.get("INTROSPECT_LAB_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on localhost: yields its base URL and token; stopped (with its kernels) at the
    end.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"No Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set INTROSPECT_LAB_CHROMIUM)."
        )
    tmp = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        PATH=bindir + os.pathsep + env.get("PATH", ""),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        INTROSPECT_LAB_FAST="1",
        INTROSPECT_LAB_OFFLINE="1",
        INTROSPECT_LAB_PROGRESS="0",
        OMP_NUM_THREADS="1",
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
    )
    # every cell in the DOM (JupyterLab 4 renders only the visible ones by default)
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env.pop("MPLBACKEND", None)  # the notebook's inline backend, as a student sees it
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={ROOT}",
        "--ServerApp.port_retries=0",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp / 'settings'}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _run_all_cells(page, timeout_error, attempts: int = 3) -> None:
    """Run → Run All Cells, from the menu as a student does it, until the first cell is queued.

    Once in a CI run (of many) the menu click was lost and no cell ever ran: the kernel sat idle
    for the whole 600 s wait. A click that queues nothing within 60 s is tried again.
    """
    queued = (  # a cell waiting or running shows [*]; one saved with a count shows [4] before any run
        "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".some(p => p.textContent.includes('[*]'))"
    )
    for _ in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        item = page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first
        item.wait_for(state="visible")
        item.click()
        try:
            page.wait_for_function(queued, timeout=60_000)
            return
        except timeout_error:
            continue
    raise AssertionError(f"Run All Cells queued no cell after {attempts} clicks.")


def test_widget_notebook_runs_and_the_slider_updates_the_preview(lab):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, token = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            n_code = sum(c["cell_type"] == "code" for c in json.loads((ROOT / NOTEBOOK).read_text())["cells"])
            page.wait_for_function(  # cells render progressively
                "n => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === n",
                arg=n_code,
                timeout=180_000,
            )
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000)

            _run_all_cells(page, sync_api.TimeoutError)

            # every code cell gets an execution count, then the kernel is idle again
            page.wait_for_function(
                """n => {
                    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                    return prompts.length === n && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
                }""",
                arg=n_code,
                timeout=600_000,
            )
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=300_000)
            tracebacks = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
            assert tracebacks.count() == 0, tracebacks.first.inner_text()[:2000]

            # the live widget is there: sliders and the preview image
            slider = page.locator(".widget-hslider").filter(has_text="jitter").first
            slider.scroll_into_view_if_needed()
            assert slider.is_visible()
            image = page.locator(".widget-image").first
            before = image.get_attribute("src") or ""

            handle = slider.locator(".noUi-handle, .ui-slider-handle, [role='slider']").first
            handle.focus()
            handle.press("ArrowLeft")
            handle.press("ArrowLeft")
            page.wait_for_function(
                """before => {
                    const img = document.querySelector('.widget-image');
                    return img && img.src && img.src !== before;
                }""",
                arg=before,
                timeout=180_000,
            )
            after = image.get_attribute("src")
            assert after and after != before

            text = page.content()
            assert "Error displaying widget" not in text
            assert "Model not found" not in text
        finally:
            browser.close()
