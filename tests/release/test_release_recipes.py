"""Static checks of the pinned build recipes against toolchain.lock.

Docker, Nix and GitHub Actions cannot run on the test machines (no container engine, no Nix,
no GitHub), so the Dockerfile, flake.nix/flake.lock and .github/workflows are checked here by
reading them: pins present and agreeing with toolchain.lock, the right commands invoked, shell
snippets syntactically valid. The native build is checked for real: the Debian packages on
this host must be the ones toolchain.lock pins.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from xen_test_release.toolchain import (
    ToolchainLock,
    load_lock,
    package_key,
    probe_debian_packages,
    toolchain_drift,
)
from xen_test_release.version import validate_version

from tests.release.conftest import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


@pytest.fixture(scope="module")
def lock() -> ToolchainLock:
    return load_lock(REPO_ROOT)


def test_lock_names_every_pin(lock: ToolchainLock) -> None:
    assert re.fullmatch(r"\d{8}T\d{6}Z", lock.get("DEBIAN_SNAPSHOT"))
    assert re.fullmatch(r"debian:bookworm-slim@sha256:[0-9a-f]{64}", lock.get("DEBIAN_IMAGE"))
    assert lock.get("DEBIAN_SUITE") == "bookworm"
    assert {"gcc-12", "binutils", "libxen-dev", "zopfli", "make"} <= set(lock.debian_packages)
    assert re.fullmatch(r"[0-9a-f]{40}", lock.get("NIXPKGS_REV"))
    nar = lock.get("NIXPKGS_NAR_HASH")
    assert nar.startswith("sha256-") and len(base64.b64decode(nar.removeprefix("sha256-"))) == 32


def test_lock_reads_the_same_in_sh_as_in_python(lock: ToolchainLock) -> None:
    """The Dockerfile sources the lock with /bin/sh: both readings must agree."""
    keys = sorted(lock.entries)
    script = ". ./toolchain.lock; " + " ".join(f'printf "%s\\n" "${key}";' for key in keys)
    result = subprocess.run(
        ["sh", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert dict(zip(keys, result.stdout.splitlines(), strict=True)) == dict(lock.entries)


def test_native_toolchain_is_the_pinned_one(lock: ToolchainLock) -> None:
    """`invoke build` uses the host's Debian packages; they must be the pinned versions."""
    os_release = Path("/etc/os-release")
    if shutil.which("dpkg-query") is None or not os_release.exists():
        pytest.skip("not a Debian host: the native build is only supported on Debian 12")
    if "VERSION_CODENAME=bookworm" not in os_release.read_text():
        pytest.skip("not Debian 12 (bookworm): toolchain.lock pins bookworm packages")
    drift = toolchain_drift(lock, probe_debian_packages(list(lock.debian_packages)))
    assert drift == [], (
        "installed toolchain differs from toolchain.lock; if Debian shipped an update, move "
        f"DEBIAN_SNAPSHOT forward and update the DEB_* pins: {drift}"
    )


# --- Dockerfile ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO_ROOT / "Dockerfile").read_text()


def test_dockerfile_base_image_is_pinned_by_digest(dockerfile: str, lock: ToolchainLock) -> None:
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert froms == [lock.get("DEBIAN_IMAGE")]


def test_dockerfile_installs_the_locked_packages_from_the_snapshot(
    dockerfile: str, lock: ToolchainLock
) -> None:
    assert "COPY toolchain.lock /etc/xen-test-vm/toolchain.lock" in dockerfile
    assert ". /etc/xen-test-vm/toolchain.lock" in dockerfile
    for package in lock.debian_packages:
        assert f'{package}="${package_key(package)}"' in dockerfile, package
    for archive, suite in (
        ("debian", "$DEBIAN_SUITE main"),
        ("debian", "$DEBIAN_SUITE-updates main"),
        ("debian-security", "$DEBIAN_SUITE-security main"),
    ):
        assert f"$snapshot/{archive}/$DEBIAN_SNAPSHOT {suite}" in dockerfile
    assert 'snapshot="http://snapshot.debian.org/archive"' in dockerfile
    assert "upgrade" not in dockerfile, "an upgrade would escape the pins"


def test_dockerfile_runs_the_same_make_as_invoke_build(dockerfile: str) -> None:
    cmd = re.search(r"^CMD\s+(.+)$", dockerfile, re.MULTILINE)
    assert cmd is not None
    assert json.loads(cmd.group(1)) == ["make", "-s", "-C", "kernel", "O=/src/build", "image"]
    tasks = (REPO_ROOT / "tasks.py").read_text()
    assert "make -s -C {ROOT / 'kernel'} O=" in tasks and " image" in tasks


def test_dockerfile_shell_is_valid(dockerfile: str) -> None:
    run = re.search(r"^RUN (.+?)(?=^\S|\Z)", dockerfile, re.MULTILINE | re.DOTALL)
    assert run is not None
    script = "\n".join(
        line for line in run.group(1).splitlines() if not line.lstrip().startswith("#")
    ).replace("\\\n", "\n")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


# --- Nix ----------------------------------------------------------------------------------


def test_flake_lock_pins_nixpkgs_as_toolchain_lock_says(lock: ToolchainLock) -> None:
    document = json.loads((REPO_ROOT / "flake.lock").read_text())
    assert document["version"] == 7 and document["root"] == "root"
    assert document["nodes"]["root"]["inputs"] == {"nixpkgs": "nixpkgs"}
    node = document["nodes"]["nixpkgs"]
    locked = node["locked"]
    assert locked["type"] == "github" and (locked["owner"], locked["repo"]) == ("NixOS", "nixpkgs")
    assert locked["rev"] == lock.get("NIXPKGS_REV")
    assert locked["narHash"] == lock.get("NIXPKGS_NAR_HASH")
    flake = (REPO_ROOT / "flake.nix").read_text()
    url = re.search(r'inputs\.nixpkgs\.url\s*=\s*"github:NixOS/nixpkgs/([^"]+)"', flake)
    assert url is not None and url.group(1) == node["original"]["ref"]


def test_flake_builds_the_kernel_with_the_locked_compiler(lock: ToolchainLock) -> None:
    flake = (REPO_ROOT / "flake.nix").read_text()
    assert "builtins.readFile ./toolchain.lock" in flake
    assert "pkgs.${toolchainLock.NIX_GCC_ATTR}" in flake
    assert re.fullmatch(r"gcc\d+", lock.get("NIX_GCC_ATTR"))
    assert lock.get("NIX_GCC_ATTR") == "gcc" + lock.get("DEB_GCC_12").split(".")[0]
    assert 'make -s -C kernel O="$PWD/build"' in flake and "image" in flake
    for variable in ("CC=", "LD=", "OBJCOPY=", "ZOPFLI=", "XEN_INCLUDE=", "SOURCE_REVISION="):
        assert f'"{variable}' in flake, variable
    makefile = (REPO_ROOT / "kernel" / "Makefile").read_text()
    for variable in ("XEN_INCLUDE", "SOURCE_REVISION", "OBJCOPY", "ZOPFLI"):
        if variable not in makefile:
            pytest.fail(f"kernel/Makefile no longer reads {variable}, which flake.nix sets")
    assert "devShells.${system}.default" in flake and "packages.${system}" in flake
    text = re.sub(r"''.*?''|\"(?:\\.|[^\"\\])*\"|#[^\n]*", "", flake, flags=re.DOTALL)
    for opening, closing in ("{}", "[]", "()"):
        assert text.count(opening) == text.count(closing), f"unbalanced {opening}{closing}"


# --- GitHub Actions -----------------------------------------------------------------------


def load_workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict)
    # YAML 1.1 reads the key `on` as the boolean true.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def run_scripts(workflow: dict[str, Any]) -> list[str]:
    return [step["run"] for step in steps(workflow) if "run" in step]


def invoke_tasks() -> set[str]:
    tasks = (REPO_ROOT / "tasks.py").read_text()
    return set(re.findall(r"^def (\w+)\(\s*c: Context", tasks, re.MULTILINE))


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflow_actions_are_pinned_by_commit(name: str) -> None:
    used = [step["uses"] for step in steps(load_workflow(name)) if "uses" in step]
    assert used
    for action in used:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflow_shell_is_valid_and_calls_existing_tasks(name: str) -> None:
    known = invoke_tasks()
    for script in run_scripts(load_workflow(name)):
        plain = re.sub(r"\$\{\{[^}]*\}\}", "X", script)
        subprocess.run(["bash", "-n"], input=plain, text=True, check=True)
        for called in re.findall(r"(?:\./dev|invoke)\s+((?:[a-z]+\s*)+)", plain):
            for task_name in called.split():
                assert task_name in known, f"{name} runs unknown invoke task {task_name!r}"


def test_ci_runs_lint_types_unit_build_and_lab(lock: ToolchainLock) -> None:
    ci = load_workflow("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    scripts = "\n".join(run_scripts(ci))
    assert "./dev lint" in scripts  # ruff check, ruff format --check, mypy --strict
    assert '-m "not lab"' in scripts and "-m lab" in scripts
    assert "docker build -t xen-test-vm-build ." in scripts
    assert "cmp build/test-vm.xen.gz build-again/test-vm.xen.gz" in scripts
    for job_name, job in ci["jobs"].items():
        if "container" in job:
            assert job["container"] == lock.get("DEBIAN_IMAGE"), job_name
        assert job["timeout-minutes"] <= 90
    assert ci["permissions"] == {"contents": "read"}


def _filter_pattern_to_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern syntax: [..] classes, + repeats, * any run without '/'."""
    out = ""
    for token in re.findall(r"\[[^\]]*\]|.", pattern):
        if token.startswith("["):
            out += token
        elif token == "+":
            out += "+"
        elif token == "*":
            out += "[^/]*"
        else:
            out += re.escape(token)
    return re.compile(out)


def test_release_workflow_runs_invoke_release_on_version_tags() -> None:
    workflow = load_workflow("release.yml")
    patterns = [_filter_pattern_to_regex(p) for p in workflow["on"]["push"]["tags"]]
    for tag in ("0.1.5", "1.20.3", "0.2.0-rc1"):
        validate_version(tag)
        assert any(p.fullmatch(tag) for p in patterns), tag
    for not_a_release in ("v0.1.5", "latest", "0.1"):
        assert not any(p.fullmatch(not_a_release) for p in patterns), not_a_release
    assert workflow["permissions"] == {"contents": "write"}
    [job] = workflow["jobs"].values()
    names = [step.get("run", step.get("uses", "")) for step in job["steps"]]
    build_image = next(i for i, n in enumerate(names) if "docker build" in n)
    release = next(i for i, n in enumerate(names) if "invoke build release" in n)
    assert build_image < release
    step = job["steps"][release]
    assert step["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert '--version "$VERSION"' in step["run"]
    assert "-r requirements.lock" in step["run"]
