"""Release versions: the tag is the bare version, as in .../releases/download/0.1.5/..."""

from __future__ import annotations

import re

from xen_test_release.errors import ReleaseError

_VERSION = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?"
)


def validate_version(text: str) -> str:
    """Return text if it is MAJOR.MINOR.PATCH with an optional -PRERELEASE, else raise."""
    if _VERSION.fullmatch(text):
        return text
    hint = " (tags carry no 'v' prefix)" if text[:1] in ("v", "V") else ""
    raise ReleaseError(
        f"invalid version {text!r}: expected MAJOR.MINOR.PATCH such as 0.1.5, "
        f"optionally with a pre-release suffix such as 0.2.0-rc1{hint}"
    )


def is_prerelease(version: str) -> bool:
    """True for versions with a pre-release suffix (published as GitHub pre-releases)."""
    return "-" in version
