"""Where the repository's own files are (the tests run from a checkout; the package itself never needs one)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
