"""The Dagster UI in a real browser (Playwright + Debian's chromium): the asset graph, features/depth, and one
partition materialized from the UI's Materialize dialog (slow). Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tick_assets.stack.localstack import DagsterStack
from tick_assets_tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("TICK_ASSETS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
# Headless flags for a machine without a display or internet (background networking would only be refused).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAY, INSTRUMENT = "2024-01-02", "deribit:BTC-PERPETUAL"
KEY = f"{DAY}|{INSTRUMENT}"


def _browser_or_skip():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser there is a broken build
        pytest.skip(message)
    return pytest.importorskip("playwright.sync_api")


def _wait_for_run(stack: DagsterStack, prefix: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in stack.runs() if r["runId"].startswith(prefix)]
        if runs and runs[0]["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
            return runs[0]
        time.sleep(2)
    raise TimeoutError(f"run {prefix} did not finish in {timeout:.0f} s")


@pytest.mark.timeout(900)
def test_materialize_a_partition_of_features_depth_from_the_ui(emulator, tmp_path) -> None:
    playwright = _browser_or_skip()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    env = {
        "TARDIS_DATASETS_URL": emulator.datasets_url,
        "TARDIS_API_URL": emulator.api_url,
        "TARDIS_API_KEY": "browser-test-key",
        "TICK_ASSETS_DATA_DIR": str(tmp_path / "data"),
        "TICK_ASSETS_DATA_TYPES": "trades,book_snapshot_25",
    }
    with DagsterStack(tmp_path / "home", env) as stack:
        # The raw day the features are computed from.
        backfill = stack.launch_backfill([["raw", "trades"], ["raw", "book_snapshot_25"]], [KEY])
        assert stack.wait_for_backfill(backfill, timeout=600)["status"] == "COMPLETED_SUCCESS"

        # The community sign-up dialog opens a second after a page loads and swallows clicks; the instance's
        # `nux: enabled: false` keeps it closed, so no test step depends on dismissing it in time.
        assert stack.graphql("{ shouldShowNux }") == {"shouldShowNux": False}

        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            try:
                # The global asset lineage: the raw -> features -> analytics groups and the warehouse views.
                page.goto(f"{stack.url}/asset-groups", wait_until="networkidle")
                page.get_by_text("Global asset lineage").wait_for()
                for group in ("raw", "features", "analytics", "warehouse"):
                    page.get_by_text(group, exact=True).first.wait_for()
                page.screenshot(path=str(ARTIFACTS / "1-asset-graph.png"))

                # features/depth, then one partition through the Materialize dialog.
                page.goto(f"{stack.url}/assets/features/depth", wait_until="networkidle")
                page.get_by_text("Order book on a fixed UTC grid").wait_for()
                page.get_by_role("button", name="Materialize…").click()
                dialog = page.get_by_role("dialog")
                date = dialog.get_by_placeholder("ex: 2024-01-01", exact=False)
                date.fill(DAY)
                date.press("Enter")
                dialog.get_by_text("Select a partition or create one").click()
                page.get_by_role("menuitem").filter(has_text=INSTRUMENT).first.click()
                dialog.get_by_text("Launch runs to materialize").click()  # closes the instrument menu
                dialog.get_by_text("1 partition", exact=True).wait_for()
                page.screenshot(path=str(ARTIFACTS / "2-materialize-dialog.png"))
                dialog.get_by_role("button", name="Launch 1 run").click()
                toast = page.get_by_text("Launched run", exact=False).first
                toast.wait_for()
                run_prefix = toast.inner_text().split()[-1]

                run = _wait_for_run(stack, run_prefix)
                page.goto(f"{stack.url}/runs/{run['runId']}", wait_until="networkidle")
                page.get_by_text("Success", exact=False).first.wait_for()
                page.screenshot(path=str(ARTIFACTS / "3-run-succeeded.png"))
            finally:
                page.screenshot(path=str(ARTIFACTS / "last-page.png"))
                browser.close()
        assert run["status"] == "SUCCESS", run
        assert run["tags"].get("dagster/partition") == KEY
        assert (
            "dagster/backfill" not in run["tags"] and "dagster/from_automation_condition" not in run["tags"]
        )
        events = stack.graphql(
            '{ assetOrError(assetKey: {path: ["features", "depth"]}) { ... on Asset {'
            " assetMaterializations(limit: 100) { partition runId } } } }"
        )["assetOrError"]["assetMaterializations"]
        assert {"partition": KEY, "runId": run["runId"]} in events
