"""Durable writes: owned temp files, fsync before and after an atomic rename, and cleanup after a crash.

A utility below the Tardis client and the lake, which both write through it (no Dagster imports).

A writer never writes at a final path. It writes `.<final name>.<host>.<pid>.<token><suffix>` next to it and
renames it into place. A process killed mid-write (kill -9, OOM, power loss) leaves that temp behind; the next
writer into the same folder removes every temp whose owner is gone: a process of this host that no longer
runs, or any owner after `STALE_AFTER_SECONDS` (another host's process cannot be checked).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from tick_assets.processes import pid_running

#: A temp older than this is abandoned whatever its owner (covers other hosts on a shared disk).
STALE_AFTER_SECONDS = 24 * 3600
_HOST = socket.gethostname().replace(".", "_") or "host"


def fsync_path(path: Path) -> None:
    """fsync a file or a directory; silently skipped where the platform or file system refuses."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def owned_temp(final: Path, suffix: str) -> Path:
    """A fresh temp path beside `final` that names this host and process (hidden, never matching `final`)."""
    return final.with_name(f".{final.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(6)}{suffix}")


def _owner_gone(temp: Path, suffix: str, now: float) -> bool:
    parts = temp.name.removesuffix(suffix).rsplit(".", 3)
    try:
        if now - temp.lstat().st_mtime > STALE_AFTER_SECONDS:
            return True
    except FileNotFoundError:
        return False  # its owner just renamed or removed it
    if len(parts) == 4 and parts[1] == _HOST and parts[2].isdigit():
        pid = int(parts[2])
        return pid != os.getpid() and not pid_running(pid)
    return False


def remove_abandoned_temps(folder: Path, suffix: str) -> list[Path]:
    """Delete the temps (`.*<suffix>`, files or folders) in `folder` whose writer is gone; return them.

    Temps of running processes are left alone, so concurrent writers into one folder never lose their file.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for temp in folder.glob(f".*{suffix}"):
        if not _owner_gone(temp, suffix, now):
            continue
        try:
            if temp.is_dir() and not temp.is_symlink():
                shutil.rmtree(temp)
            else:
                temp.unlink()
        except FileNotFoundError:
            continue
        except OSError:
            continue  # not ours to remove (permissions); it stays invisible to readers anyway
        removed.append(temp)
    return removed


def write_file_atomically(path: Path, data: bytes, suffix: str = ".tmp") -> None:
    """Write `data` to `path` through an owned temp + rename: readers see the old file or the new one."""
    remove_abandoned_temps(path.parent, suffix)
    tmp = owned_temp(path, suffix)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
