"""`tick-assets download` stopped with Ctrl-C while its downloads stall: it exits at once, leaving no partial file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tick_assets.emulator.faults import FaultConfig

CLI = Path(sys.executable).parent / "tick-assets"


def test_ctrl_c_during_stalled_downloads_exits_at_once_without_partial_files(
    start_emulator, tmp_path
) -> None:
    server = start_emulator(FaultConfig(stall=1.0, stall_seconds=60))  # every body stalls for a minute
    env = {
        **os.environ,
        "TARDIS_DATASETS_URL": server.datasets_url,
        "TARDIS_API_URL": server.api_url,
        "TARDIS_API_KEY": "test-key",
        "TICK_ASSETS_DATA_DIR": str(tmp_path),
    }
    env.pop("TICK_ASSETS_LIMITER_URL", None)
    args = ["download", "deribit:BTC-PERPETUAL", "--data-types", "trades", "--from", "2024-01-02"]
    proc = subprocess.Popen(
        [str(CLI), *args, "--to", "2024-01-06", "--concurrency", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while server.stats["counts"].get("fault_stall", 0) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "interrupted" in err, (out, err)
    assert took < 10, f"Ctrl-C waited {took:.1f} s for stalled reads (the read timeout is 60 s)"
    assert server.stats["counts"]["fault_stall"] == 2  # nothing new was started after it
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith((".csv.gz", ".tmp"))]
