"""The package as a wheel installs it, not the checkout: what the local stack reads ships with it.

The slow test builds a wheel from a copy of the sources, installs it into a fresh virtual environment (the
dependencies come from this one's site-packages; only the build backend comes from pip's index) and starts
the local stack from an empty folder, where `tick-assets demo` once failed looking for
`site-packages/dagster.yaml`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from tick_assets.stack.localstack import CODE_LOCATION, instance_template, write_workspace_yaml
from tick_assets_tests.helpers.paths import REPO_ROOT

#: The console scripts of the dependencies that the stack runs from its interpreter's folder.
DAGSTER_SCRIPTS = ("dagster", "dagster-webserver", "dagster-daemon")


def test_packaged_instance_settings_equal_the_repository_roots() -> None:
    assert instance_template() == yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    distributed = REPO_ROOT / "deploy" / "distributed" / "dagster.yaml"
    assert instance_template("distributed.yaml") == yaml.safe_load(distributed.read_text())


def test_stack_workspace_loads_the_code_location_of_the_repository_workspace(tmp_path) -> None:
    root = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    ours = yaml.safe_load(write_workspace_yaml(tmp_path).read_text())
    for workspace in (root, ours):
        for entry in workspace["load_from"]:
            entry["python_module"].pop("working_directory", None)
    assert ours == root
    assert ours["load_from"][0]["python_module"] == CODE_LOCATION


def test_importing_the_definitions_prints_no_beta_or_preview_warning() -> None:
    """The Beta/Preview features we use knowingly are filtered by message where we use them; any other such
    warning still shows (here one raised after the import)."""
    code = (
        "import warnings, dagster as dg, tick_assets.definitions; "
        "warnings.warn('another beta feature', dg.BetaWarning)"
    )
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    warned = [line for line in done.stderr.splitlines() if "BetaWarning" in line or "PreviewWarning" in line]
    assert len(warned) == 1 and "another beta feature" in warned[0], done.stderr


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    """A wheel built from a copy of the sources (the checkout gets no build/ or egg-info from it)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "tick_assets", source / "tick_assets", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp_path / "dist"
    # Build isolation fetches setuptools and wheel through pip's configured index.
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)],
        tmp_path,
        env,
        timeout=300,
    )
    (wheel,) = dist.glob("tick_assets-*.whl")
    return wheel


def _venv_with_our_dependencies(venv: Path, env: dict[str, str]) -> Path:
    """A fresh venv that sees this venv's site-packages (appended to sys.path by a .pth file, whose own .pth
    files, such as the editable install's, stay unprocessed) and has the Dagster console scripts."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    (Path(purelib) / "_tick_assets_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for name in DAGSTER_SCRIPTS:
        script = (Path(sys.executable).parent / name).read_text().split("\n", 1)[1]
        target = venv / "bin" / name
        target.write_text(f"#!{python}\n{script}")
        target.chmod(0o755)
    return python


#: Run by the wheel's interpreter from the empty folder: the local stack (what the demo starts first) on the
#: packaged instance settings, with the code location loaded by its webserver and daemon.
STACK_PROBE = """
import json, sys
from pathlib import Path

import yaml

import tick_assets
from tick_assets.stack.localstack import DagsterStack

home = Path("home").absolute()
with DagsterStack(home, {"TICK_ASSETS_DATA_DIR": str(Path("data").absolute())}) as stack:
    assets = stack.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
    stack.set_pool_limit("tardis", 4)
    print(json.dumps({
        "package": tick_assets.__file__,
        "sys_path": sys.path,
        "assets": sorted("/".join(a["assetKey"]["path"]) for a in assets),
        "tardis_slots": stack.pool_slots("tardis"),
        "instance": yaml.safe_load((home / "dagster.yaml").read_text()),
    }))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_installed_wheel_runs_the_local_stack_from_an_empty_folder(tmp_path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TICK_ASSETS_", "TARDIS_", "DAGSTER_"))
        and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    wheel = _build_wheel(tmp_path, env)
    assert {"tick_assets/stack/dagster.yaml", "tick_assets/stack/distributed.yaml"} <= set(
        zipfile.ZipFile(wheel).namelist()
    )

    venv = tmp_path / "venv"
    python = _venv_with_our_dependencies(venv, env)
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        tmp_path,
        env,
        timeout=300,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    assert "demo" in _run([str(venv / "bin" / "tick-assets"), "--help"], empty, env, timeout=120)

    # The code location loads from the wheel (what `dagster definitions validate` does for a workspace).
    (tmp_path / "validate-home").mkdir()
    validated = _run(
        [str(venv / "bin" / "dagster"), "definitions", "validate", "-m", "tick_assets.definitions"],
        empty,
        {**env, "DAGSTER_HOME": str(tmp_path / "validate-home")},
        timeout=300,
    )
    assert "passed validation" in validated, validated

    # The stack, where `tick-assets demo` failed with "No such file or directory: .../site-packages/dagster.yaml".
    probe = json.loads(
        _run([str(python), "-c", STACK_PROBE], empty, env, timeout=300).strip().splitlines()[-1]
    )
    assert Path(probe["package"]).is_relative_to(venv), probe[
        "package"
    ]  # the wheel's copy, never the checkout
    assert not any(Path(p) == REPO_ROOT for p in probe["sys_path"] if p), probe["sys_path"]
    assert {"raw/trades", "features/depth", "analytics/daily_summary"} <= set(probe["assets"]), probe[
        "assets"
    ]
    assert probe["tardis_slots"] == [0, 4]
    assert probe["instance"]["concurrency"] == instance_template()["concurrency"]
    assert probe["instance"]["storage"] == {"sqlite": {"base_dir": str(empty / "home" / "storage")}}
    assert not list(empty.glob("*.yaml"))  # nothing written beside the user's files but data/ and home/
