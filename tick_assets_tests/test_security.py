"""Exposure by default: servers listen on loopback only, and the secret scan used by the daemon tests works."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets_tests.helpers.exposure import files_holding, listen_addresses

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp")


def test_the_emulator_listens_on_loopback_only_by_default(tmp_path) -> None:
    with EmulatorServer(EmulatorConfig(port=0, cache_dir=tmp_path)) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        assert listen_addresses(port) == {"127.0.0.1"}


def test_the_emulator_command_listens_on_loopback_only_by_default(tmp_path) -> None:
    port_file = tmp_path / "port"
    cli = Path(sys.executable).parent / "tick-assets"
    proc = subprocess.Popen(
        [str(cli), "emulator", "--port", "0", "--port-file", str(port_file), "--cache-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.05)
        assert listen_addresses(int(port_file.read_text())) == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_secret_scan_finds_plain_and_url_encoded_copies(tmp_path) -> None:
    secret = "tk-SECRET/with+chars"
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "plain.log").write_bytes(b"header " + secret.encode() + b" tail")
    (tmp_path / "a" / "encoded.txt").write_text("key=tk-SECRET%2Fwith%2Bchars")
    (tmp_path / "clean.txt").write_text("nothing here")
    assert sorted(p.name for p in files_holding(secret, tmp_path)) == ["encoded.txt", "plain.log"]
