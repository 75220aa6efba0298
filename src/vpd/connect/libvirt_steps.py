"""Records each libvirt call that changes something as a step (core/steps.py), as it returns.

The methods below of libvirt-python's classes are wrapped once, at import: the call itself
goes to libvirt unchanged; when someone records steps (an Operation, --explain), the call, the
object it was made on and its arguments are appended. Calls that only read are not recorded.
ops/explain.py turns these records into virsh commands."""
from __future__ import annotations

import functools
import re
from typing import Any

import libvirt

from ..core import steps

# class -> methods that change state. Each is translated by ops/explain.py; a method added
# here without a translation is shown as a commented libvirt call (never silently dropped).
RECORDED: dict[str, tuple[str, ...]] = {
    "virConnect": ("defineXML", "defineXMLFlags", "createXML", "storagePoolDefineXML", "storagePoolCreateXML",
                   "networkDefineXML", "networkCreateXML", "secretDefineXML"),
    "virDomain": ("create", "createWithFlags", "destroy", "destroyFlags", "shutdown", "shutdownFlags", "reboot",
                  "suspend", "resume", "undefine", "undefineFlags", "setAutostart", "attachDevice",
                  "attachDeviceFlags", "detachDevice", "detachDeviceFlags", "updateDeviceFlags",
                  "snapshotCreateXML", "revertToSnapshot", "setMetadata", "setVcpusFlags", "setMemoryFlags",
                  "setMaxMemory", "managedSave", "managedSaveRemove", "migrateToURI3", "blockCommit",
                  "blockCopy", "blockJobAbort", "blockPull", "blockResize", "setInterfaceParameters",
                  "fsFreeze", "fsThaw"),
    "virDomainSnapshot": ("delete",),
    "virStoragePool": ("create", "build", "destroy", "undefine", "delete", "setAutostart", "refresh", "createXML",
                       "createXMLFrom"),
    "virStorageVol": ("delete", "wipe", "resize", "upload", "download"),
    "virNetwork": ("create", "destroy", "undefine", "setAutostart", "update"),
    "virSecret": ("setValue", "undefine"),
}


def _name(obj: Any) -> str | None:
    try:
        return obj.name()
    except libvirt.libvirtError:
        return None


def describe(obj: Any) -> dict[str, Any]:
    """What identifies a libvirt object in a virsh command."""
    if isinstance(obj, libvirt.virConnect):
        return {"type": "connection"}
    if isinstance(obj, libvirt.virDomain):
        return {"type": "domain", "name": _name(obj)}
    if isinstance(obj, libvirt.virDomainSnapshot):
        return {"type": "snapshot", "name": obj.getName(), "domain": _name(obj.getDomain())}
    if isinstance(obj, libvirt.virStoragePool):
        return {"type": "pool", "name": _name(obj)}
    if isinstance(obj, libvirt.virStorageVol):
        return {"type": "volume", "name": _name(obj), "pool": _name(obj.storagePoolLookupByVolume()),
                "path": obj.path()}
    if isinstance(obj, libvirt.virNetwork):
        return {"type": "network", "name": _name(obj)}
    if isinstance(obj, libvirt.virSecret):
        return {"type": "secret", "uuid": obj.UUIDString()}
    if isinstance(obj, libvirt.virStream):
        return {"type": "stream"}
    return {"type": type(obj).__name__}


# A VNC/SPICE password in domain XML stays out of the journal.
_PASSWD = re.compile(r"""passwd=(["'])[^"']*\1""")


def _arg(value: Any) -> Any:
    if isinstance(value, str):
        return _PASSWD.sub('passwd="SECRET-NOT-RECORDED"', value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _arg(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_arg(v) for v in value]
    return describe(value)


def _uri(obj: Any) -> str | None:
    try:
        conn = obj if isinstance(obj, libvirt.virConnect) else obj.connect()
        return conn.getURI()
    except (AttributeError, libvirt.libvirtError):
        return None


def _wrap(cls_name: str, method: str, original: Any) -> Any:
    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not steps.active():
            return original(self, *args, **kwargs)
        # Named before the call: after undefine/delete the object may no longer answer.
        where, uri = describe(self), _uri(self)
        result = original(self, *args, **kwargs)
        if method == "setValue":  # a secret's value never goes to the journal
            args = ("<secret value>",) + tuple(args[1:])
        steps.record({"kind": "libvirt", "uri": uri, "call": f"{cls_name}.{method}", "object": where,
                      "args": [_arg(a) for a in args], "kwargs": {k: _arg(v) for k, v in kwargs.items()}})
        return result

    call.__vpd_recorded__ = True  # type: ignore[attr-defined]
    return call


def record_agent(dom: libvirt.virDomain, command: str, timeout: int, query: bool) -> None:
    """A guest agent command sent through libvirt_qemu.qemuAgentCommand (a module function, not a
    method: vm/agent.py records it itself). `query`: the command only reads in the guest."""
    if steps.active():
        steps.record({"kind": "libvirt", "uri": _uri(dom), "call": "libvirt_qemu.qemuAgentCommand",
                      "object": describe(dom), "args": [command, timeout], "kwargs": {}, "query": query})


def record_read(obj: Any, call: str, args: list) -> None:
    """A libvirt call that only reads, recorded (as a read) where a command's answer comes from it:
    `vpd vm ip --explain` shows the `virsh domifaddr` that answered."""
    if steps.active():
        steps.record({"kind": "libvirt", "uri": _uri(obj), "call": call, "object": describe(obj),
                      "args": [_arg(a) for a in args], "kwargs": {}, "query": True})


def install() -> None:
    for cls_name, methods in RECORDED.items():
        cls = getattr(libvirt, cls_name)
        for method in methods:
            original = getattr(cls, method, None)
            if original is None or getattr(original, "__vpd_recorded__", False):
                continue
            setattr(cls, method, _wrap(cls_name, method, original))


install()
