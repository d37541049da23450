"""The house's one xl config writer.

Standard library only, and nothing else from this package: the lab copies this file alone into
its dom0, where the XAPI emulator (lab/xapi_emulator) writes its domains' configs with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAMED_ESCAPES = {"\a": "a", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t", "\v": "v"}


class XlStringError(ValueError):
    """A value that xl's config parser cannot be given (each caller reports it its own way)."""


def xl_string(value: str) -> str:
    """A double-quoted xl config string.

    libxlu (Xen 4.17) understands only the named escapes; its numeric ones are broken (\\xHH is
    always rejected, octal drops the character), so other control characters cannot be expressed.
    Bytes >= 0x80 (UTF-8) go in raw.
    """
    out = []
    for char in value:
        if char in "\"'\\":
            out.append("\\" + char)
        elif char in _NAMED_ESCAPES:
            out.append("\\" + _NAMED_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            raise XlStringError(f"xl config strings cannot hold control character {char!r}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _value(value: str | int) -> str:
    if isinstance(value, bool):  # before int: True is an int, and xl reads `True` as a syntax error
        return "1" if value else "0"
    return str(value) if isinstance(value, int) else xl_string(value)


def xl_config_text(settings: Mapping[str, str | int]) -> str:
    """`key = value` lines, strings quoted by xl_string, integers bare, booleans as 1 or 0."""
    for key in settings:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            # A programming error, not bad input: a plain ValueError, which no caller maps.
            raise ValueError(f"not an xl config key: {key!r}")
    return "".join(f"{key} = {_value(value)}\n" for key, value in settings.items())


# Xen 4.17's PV shim sets a K8 erratum bit in MSR HWCR on every AMD family-15 CPU
# (xen/arch/x86/cpu/amd.c, init_amd) and Xen refuses that write from an HVM guest: the shim dies
# at boot with a #GP. A real K8 cannot run PVH at all; only an emulated CPU reports family 15
# with SVM (QEMU's TCG `max` and `qemu64`, as nested test labs run), and there the shim's
# container is shown a Zen family instead.
SHIM_CPUID_ON_FAMILY_15 = "host,family=23,model=1,stepping=2"


def shim_mib(memory_mib: int) -> int:
    """The memory XAPI gives a PV-in-PVH domain's shim on top of the VM's own: 23 MiB and one
    per 90 (ocaml/xapi-idl/memory/memory.ml, PVinPVH_memory_model_data.shim_mib)."""
    return 23 + memory_mib // 90


def shim_cpuid(cpuinfo: str) -> str:
    """The xl `cpuid` a PV-in-PVH guest needs on a host with this /proc/cpuinfo ("": none)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
        if not line.strip():
            break  # the first processor speaks for all
    family_15_amd = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "15"
    return SHIM_CPUID_ON_FAMILY_15 if family_15_amd else ""
