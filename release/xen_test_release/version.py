"""Release versions: the tag is the bare version, as in .../releases/download/0.1.5/..."""

from __future__ import annotations

from xen_test_vm.kernel_source import check_version


def validate_version(text: str) -> str:
    """MAJOR.MINOR.PATCH with an optional -PRERELEASE (a UsageError, exit status 2, if not)."""
    return check_version(text)


def is_prerelease(version: str) -> bool:
    """True for versions with a pre-release suffix (published as GitHub pre-releases)."""
    return "-" in version
