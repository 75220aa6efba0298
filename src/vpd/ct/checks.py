"""What users give `vpd ct`, checked before anything is sent to incusd (exit 2, nothing changed).

Pure functions: names, image aliases, container paths, and the configuration keys the seed
sets (`lxc config set NAME limits.memory 256MB`) with their values."""
from __future__ import annotations

import posixpath
import re

from ..core.errors import UsageError
from ..core.names import check_name

# Incus names instances as host names: a letter first, then letters, digits and '-', at most 63.
_INSTANCE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}\Z")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_FINGERPRINT = re.compile(r"^[0-9a-f]{12,64}\Z")


def check_ct_name(name: str) -> str:
    """A VM-safe name (core.names) that Incus also takes as a host name."""
    check_name(name, "container name")
    if not _INSTANCE.match(name) or name.endswith("-"):
        raise UsageError(f"invalid container name {name!r}",
                         hint="a container is named like a host: a letter first, then letters, digits or '-' "
                              "(not last), at most 63")
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or ".." in alias or not _ALIAS.match(alias):
        raise UsageError(f"invalid image alias {alias!r}",
                         hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return alias


def check_image_ref(ref: str) -> str:
    """An image alias or a fingerprint (prefix of at least 12 hex digits)."""
    if isinstance(ref, str) and _FINGERPRINT.match(ref):
        return ref
    return check_alias(ref)


def check_ct_path(text: str) -> str:
    """An absolute path inside a container that cannot climb out of it: no '..' component,
    no NUL, no control characters. Returned normalised ('//a/./b' -> '/a/b')."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise UsageError(f"container path {text!r} must be absolute (start with '/')")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise UsageError(f"container path {text!r} holds control characters")
    if ".." in text.split("/"):
        raise UsageError(f"container path {text!r} has a '..' component",
                         hint="give the path from the container's root, without '..'")
    normal = posixpath.normpath(text)
    normal = "/" + normal.lstrip("/")
    if normal == "/":
        raise UsageError("a file command needs a file path, not the container's root")
    return normal


_SNAPSHOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")


def check_snapshot_name(name: str) -> str:
    """Incus keeps a snapshot as NAME/SNAP: no '/', nothing that climbs."""
    if not isinstance(name, str) or ".." in name or not _SNAPSHOT.match(name):
        raise UsageError(f"invalid snapshot name {name!r}",
                         hint="use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def check_profile_name(name: str) -> str:
    return check_name(name, "profile name")


def split_ct_path(text: str) -> tuple[str, str]:
    """'web1/root/datos' (the seed's NAME/PATH) -> ('web1', '/root/datos')."""
    name, sep, rest = str(text).partition("/")
    if not sep or not name:
        raise UsageError(f"{text!r} is not NAME/PATH", hint="e.g. web1/root/datos")
    return check_ct_name(name), check_ct_path("/" + rest)


# --- configuration keys and values -------------------------------------------------------

_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB|KiB|MiB|GiB|TiB|K|M|G|T)?\Z")
_BINARY = {"K": "KiB", "M": "MiB", "G": "GiB", "T": "TiB"}
_FACTORS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
            "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
MIN_MEMORY = 4 * 2**20  # below this not even busybox's init starts
_CPU_SET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*\Z")
_ALLOWANCE = re.compile(r"^(\d{1,3}%|\d+ms/\d+ms)\Z")
_TRUE_FALSE = ("true", "false")


def _memory(value: str) -> str:
    v = value.strip()
    if v.endswith("%"):
        if v[:-1].isdigit() and 1 <= int(v[:-1]) <= 100:
            return v
        raise UsageError(f"limits.memory {value!r}: a percentage must be 1-100%")
    m = _BYTES.match(v)
    if not m:
        raise UsageError(f"invalid limits.memory {value!r}", hint="use a size such as 256MiB, 256MB, 1GiB or 50%")
    unit = _BINARY.get(m.group(2) or "", m.group(2) or "B")
    if float(m.group(1)) * _FACTORS[unit] < MIN_MEMORY:
        raise UsageError(f"limits.memory {value!r} is too small (at least 4MiB)")
    return f"{m.group(1)}{unit}"


def _cpu(value: str) -> str:
    v = value.strip()
    if v.isdigit():
        if not 1 <= int(v) <= 4096:
            raise UsageError(f"limits.cpu {value!r}: give 1 or more CPUs")
        return v
    if _CPU_SET.match(v):
        return v  # a CPU set (pinning): 0-1 or 0,2
    raise UsageError(f"invalid limits.cpu {value!r}", hint="use a count (2) or a CPU set (0-1, 0,2)")


def _int_range(lo: int, hi: int):
    def check(value: str, key: str) -> str:
        v = value.strip()
        if not v.isdigit() or not lo <= int(v) <= hi:
            raise UsageError(f"invalid {key} {value!r}: use a whole number {lo}-{hi}")
        return v
    return check


def _choice(*allowed: str):
    def check(value: str, key: str) -> str:
        v = value.strip().lower()
        if v not in allowed:
            raise UsageError(f"invalid {key} {value!r}: use one of {', '.join(allowed)}")
        return v
    return check


def _allowance(value: str, key: str) -> str:
    v = value.strip()
    if not _ALLOWANCE.match(v) or (v.endswith("%") and not 1 <= int(v[:-1]) <= 100):
        raise UsageError(f"invalid {key} {value!r}", hint="use a share such as 50% or a quota such as 25ms/100ms")
    return v


# The keys `vpd ct config set` and `--limit` accept, each with its value check.
CONFIG_KEYS = {
    "limits.cpu": lambda v, k: _cpu(v),
    "limits.cpu.allowance": _allowance,
    "limits.cpu.priority": _int_range(0, 10),
    "limits.memory": lambda v, k: _memory(v),
    "limits.memory.enforce": _choice("hard", "soft"),
    "limits.memory.swap": _choice(*_TRUE_FALSE),
    "limits.processes": _int_range(1, 4_194_304),
    "boot.autostart": _choice(*_TRUE_FALSE),
    "security.nesting": _choice(*_TRUE_FALSE),
}


def check_config(key: str, value: str) -> tuple[str, str]:
    """(key, normalised value), or UsageError naming the keys vpd knows."""
    check = CONFIG_KEYS.get(key)
    if check is None:
        raise UsageError(f"unknown or unsupported configuration key {key!r}",
                         hint="vpd sets: " + ", ".join(sorted(CONFIG_KEYS)))
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{key} needs a value")
    return key, check(value, key)


def parse_limits(text: str | None) -> dict[str, str]:
    """--limit cpu=2,memory=128MiB -> {'limits.cpu': '2', 'limits.memory': '128MiB'}.
    A CPU set holds commas: 'cpu=0,2' is ambiguous, so use 'cpu=0-1' or `config set`."""
    out: dict[str, str] = {}
    if not text:
        return out
    for part in text.split(","):
        key, sep, value = part.partition("=")
        full = "limits." + key.strip()
        if not sep or full not in CONFIG_KEYS:
            raise UsageError(f"--limit: unexpected {part!r}",
                             hint="use e.g. cpu=1,memory=128MiB (keys: "
                                  + ", ".join(k.removeprefix("limits.") for k in CONFIG_KEYS if k.startswith("limits."))
                                  + ")")
        if full in out:
            raise UsageError(f"--limit gives {key.strip()} twice")
        out.update([check_config(full, value)])
    return out


# --- profiles -------------------------------------------------------------------------------

# What a profile may hold through vpd: the limits above, and devices of the two kinds `ct init`
# makes (a root disk on a storage pool, a NIC on a managed network). No disk with a `source`:
# that would hand a host directory to every container of the profile.
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
_DEVICE_KEYS = {"disk": {"type", "path", "pool", "size"}, "nic": {"type", "name", "network", "hwaddr", "mtu"}}


def check_profile(body: object) -> dict:
    """A profile as users edit it ({description, config, devices}), checked whole: a bad key or
    value anywhere refuses all of it (exit 2, nothing sent). Returns it normalised."""
    if not isinstance(body, dict):
        raise UsageError("a profile is a mapping with description, config and devices")
    unknown = set(body) - {"name", "description", "config", "devices", "used_by", "project"}
    if unknown:
        raise UsageError(f"unknown profile fields: {', '.join(sorted(map(str, unknown)))}",
                         hint="a profile has description, config and devices")
    description = body.get("description") or ""
    if not isinstance(description, str) or any(ord(c) < 32 for c in description):
        raise UsageError("a profile's description must be one line of text")
    config = body.get("config") or {}
    devices = body.get("devices") or {}
    if not isinstance(config, dict) or not isinstance(devices, dict):
        raise UsageError("a profile's config and devices must be mappings")
    out_config = dict(check_config(str(k), str(v)) for k, v in config.items())
    out_devices: dict[str, dict[str, str]] = {}
    for dev_name, dev in devices.items():
        check_name(str(dev_name), "device name")
        if not isinstance(dev, dict) or dev.get("type") not in _DEVICE_KEYS:
            raise UsageError(f"device {dev_name!r}: vpd profiles hold only disk and nic devices")
        extra = set(dev) - _DEVICE_KEYS[dev["type"]]
        if extra:
            raise UsageError(f"device {dev_name!r}: keys {', '.join(sorted(map(str, extra)))} are not allowed",
                             hint=f"a {dev['type']} device takes: {', '.join(sorted(_DEVICE_KEYS[dev['type']]))}")
        values = {str(k): str(v) for k, v in dev.items()}
        if dev["type"] == "disk" and (values.get("path") != "/" or not values.get("pool")):
            raise UsageError(f"device {dev_name!r}: a disk device is the root disk (path: /, pool: POOL)")
        if dev["type"] == "nic" and not values.get("network"):
            raise UsageError(f"device {dev_name!r}: a nic device names its network")
        for k in ("pool", "network", "name"):
            if k in values:
                check_name(values[k], f"{dev_name}.{k}")
        if "size" in values and not _BYTES.match(values["size"]):
            raise UsageError(f"device {dev_name!r}: invalid size {values['size']!r}")
        if "hwaddr" in values and not _MAC.match(values["hwaddr"]):
            raise UsageError(f"device {dev_name!r}: invalid hwaddr {values['hwaddr']!r}")
        if "mtu" in values and not (values["mtu"].isdigit() and 576 <= int(values["mtu"]) <= 9000):
            raise UsageError(f"device {dev_name!r}: mtu must be 576-9000")
        out_devices[str(dev_name)] = values
    return {"description": description, "config": out_config, "devices": out_devices}
