"""What a run could expose: files holding a secret, and the addresses a local port listens on."""

from __future__ import annotations

import socket
import struct
import urllib.parse
from pathlib import Path


def files_holding(secret: str, *roots: Path) -> list[Path]:
    """Every file under `roots` whose bytes contain `secret` (as is or URL-encoded)."""
    needles = {secret.encode(), urllib.parse.quote(secret, safe="").encode()}
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if any(n in data for n in needles):
                    hits.append(path)
    return hits


def _decode_v4(hex_addr: str) -> str:
    return socket.inet_ntoa(struct.pack("<I", int(hex_addr, 16)))


def _decode_v6(hex_addr: str) -> str:
    words = [struct.pack("<I", int(hex_addr[i : i + 8], 16)) for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, b"".join(words))


def listen_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp{,6} (Linux)."""
    found = set()
    for table, decode in (("/proc/net/tcp", _decode_v4), ("/proc/net/tcp6", _decode_v6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(decode(addr))
    return found
