"""Packaging: the client installs alone (its own dependencies only) into a fresh venv and runs;
one version source; the licence file matches the declared licence; hash-pinned locks, runtime
apart from test tools; the client imports neither the lab, the release tooling nor pyxs.

The fresh venv gets its dependencies (requests, XenAPI) and the build backend from the package
index pip is configured for; the client itself comes from this checkout's wheel.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
import xen_test_vm

from tests.client.conftest import ROOT

PIP = ["-m", "pip", "--disable-pip-version-check", "-q"]
TOOLING_ONLY = {"pygithub", "cryptography", "pynacl", "invoke", "pyjwt", "pyxs", "cffi"}
TEST_TOOLS = {"pytest", "pytest-timeout", "hypothesis", "mypy", "ruff", "pyyaml"}


def _locked(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.M)
    return {name.lower().replace("_", "-"): ver for name, ver in pins}


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, *PIP, "wheel", "--no-deps", "-w", str(out), str(ROOT / "client")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob("xen_test_vm-*.whl")
    return wheel


def test_the_client_alone_installs_into_a_fresh_venv_and_runs(
    client_wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), *PIP, "install", str(client_wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"xen-test-vm", "requests", "xenapi"} <= installed
    assert installed & (TOOLING_ONLY | TEST_TOOLS) == set()
    script = venv / "bin" / "xen-test-vm"
    for args in (["--help"], ["install", "--help"]):
        proc = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: xen-test-vm"), proc.stderr
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == f"xen-test-vm {(ROOT / 'kernel' / 'VERSION').read_text().strip()}"
    # Every module imports without the checkout (no lab, no release tooling, no pyxs).
    names = [
        n.removesuffix("/__init__.py").removesuffix(".py").replace("/", ".")
        for n in zipfile.ZipFile(client_wheel).namelist()
        if n.endswith(".py") and not n.endswith("__main__.py")
    ]
    imported = subprocess.run(
        [str(python), "-c", f"import {', '.join(names)}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr


def test_the_wheel_carries_the_isc_licence(client_wheel: Path) -> None:
    wheel = zipfile.ZipFile(client_wheel)
    metadata = next(n for n in wheel.namelist() if n.endswith("/METADATA"))
    assert "License-Expression: ISC" in wheel.read(metadata).decode()
    licence = next(n for n in wheel.namelist() if n.endswith("licenses/LICENSE"))
    assert wheel.read(licence) == (ROOT / "LICENSE").read_bytes()
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("ISC License") and "Permission to use, copy, modify" in text
    for pyproject in (ROOT / "pyproject.toml", ROOT / "client" / "pyproject.toml"):
        assert 'license = "ISC"' in pyproject.read_text()


def test_one_version_source() -> None:
    kernel_version = (ROOT / "kernel" / "VERSION").read_text().strip()
    assert xen_test_vm.__version__ == kernel_version
    assert version("xen-test-vm") == version("xen-test-vm-tools") == kernel_version
    assert (ROOT / "client" / "xen_test_vm" / "VERSION").resolve() == ROOT / "kernel" / "VERSION"
    stated = [
        str(p.relative_to(ROOT))
        for p in [*ROOT.glob("*.toml"), *(ROOT / "client").rglob("*.toml"), *ROOT.glob("*/*/*.py")]
        if re.search(rf"(version|__version__)\s*=\s*\"{re.escape(kernel_version)}\"", p.read_text())
    ]
    assert stated == []


def test_locks_are_hashed_and_split_into_runtime_and_test() -> None:
    runtime_lock, test_lock = ROOT / "requirements.lock", ROOT / "requirements-test.lock"
    for lock in (runtime_lock, test_lock):
        entries = re.split(r"\n(?=[A-Za-z])", lock.read_text().split("\n", 1)[1].strip())
        pins = [e for e in entries if not e.startswith("#")]
        assert pins and all(re.search(r"--hash=sha256:[0-9a-f]{64}", e) for e in pins), lock
    runtime, test = _locked(runtime_lock), _locked(test_lock)
    assert set(runtime) & set(test) == set()
    assert {"requests", "xenapi", "pygithub", "invoke"} <= set(runtime)
    assert set(runtime) & TEST_TOOLS == set() and set(test) >= TEST_TOOLS
    assert "pyxs" not in runtime and "pyxs" not in test
    for name, pinned in {**runtime, **test}.items():
        assert version(name) == pinned, name


def test_the_client_imports_neither_the_lab_nor_the_release_tooling_nor_pyxs() -> None:
    for source in (ROOT / "client" / "xen_test_vm").glob("*.py"):
        text = source.read_text()
        assert not re.search(r"^\s*(from|import) (xen_test_lab|xen_test_release|pyxs)", text, re.M)
