"""What front ends run to reach inside a guest: `vpd vm ip`, `vm exec`, `vm fs` (the guest
agent, vm/agent.py) and `vm ssh` (vm/guest_ssh.py). The VM is found across the inventory (the
running copy when two hosts define it)."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import UsageError, VpdError
from ..ops import Operation, Session
from ..ops.locks import vm_key
from ..ops.results import WithExitCode
from . import agent, seed
from .operations import locate


def ip(session: Session, name: str, host_ref: str | None = None) -> dict:
    """The guest's addresses: the agent first, then DHCP leases, then ARP (which one answered is said)."""
    vm = locate(session, name, host_ref)
    found = session.call(vm.host, lambda _c: agent.addresses(vm.domain))
    return {"host": vm.host.name, **found}


def fs(session: Session, name: str, host_ref: str | None = None) -> dict:
    """The guest's mounted filesystems with their size and use (guest-get-fsinfo): `df -h` from outside."""
    vm = locate(session, name, host_ref)
    filesystems = session.call(vm.host, lambda _c: agent.GuestAgent(vm.domain).filesystems())
    return {"host": vm.host.name, "vm": name, "filesystems": [f.to_dict() for f in filesystems]}


def exec_(session: Session, name: str, argv: list[str], host_ref: str | None = None,
          timeout: float = 60.0) -> WithExitCode:
    """Run a program in the guest through the agent (no shell, no SSH); its exit code becomes
    the result's. Journaled as an operation; no VM lock: a command in the guest does not race
    vpd's own changes to the VM (a backup or migration may run meanwhile)."""
    argv = agent.check_argv(argv)
    vm = locate(session, name, host_ref)
    with Operation(session, "vm.exec", target=f"{vm.host.name}/{name}", argv=argv) as op:
        result = session.call(vm.host, lambda _c: agent.GuestAgent(vm.domain).run(argv, timeout=timeout))
        op.result = {"exit_code": result.exit_code, "signal": result.signal, "seconds": result.seconds}
    return WithExitCode({"host": vm.host.name, "vm": name, **result.to_dict()}, result.exit_code)


def seed_remove(session: Session, name: str, host_ref: str | None = None, force: bool = False) -> dict:
    """Eject and delete the VM's cloud-init seed once cloud-init has finished in it (the guest
    agent's `cloud-init status`, else cloud-init's final message on the console); `force`
    removes it without that evidence."""
    vm = locate(session, name, host_ref)
    evidence = session.call(vm.host, lambda _c: _cloud_init_evidence(vm))
    if not force and evidence.finished is not True:
        raise VpdError(f"cloud-init has not been seen to finish in {name} ({evidence.source}: {evidence.detail}); "
                       "its seed stays attached",
                       hint=f"wait for its first boot to end (`vpd vm console {name} --log`), or give --force")
    seen = {"source": evidence.source, "finished": evidence.finished, "detail": evidence.detail}
    with Operation(session, "vm.seed-remove", target=f"{vm.host.name}/{name}", locks=[vm_key(name)], force=force,
                   evidence=seen) as op:
        result = session.call(vm.host, lambda _c: seed.remove(vm.host, vm.domain))
        op.result = result
    return {"host": vm.host.name, "vm": name, **result, "evidence": seen}


def _cloud_init_evidence(vm) -> seed.Evidence:
    from .lifecycle import console_log

    if vm.domain.isActive() and agent.agent_channel_state(vm.domain) == "connected":
        try:
            ran = agent.GuestAgent(vm.domain).run(["cloud-init", "status"], timeout=60)
            done = seed.status_says_done(ran.stdout)
            if done is not None:
                return seed.Evidence(done, "guest agent", ran.stdout.strip())
        except agent.AgentError:
            pass  # no usable answer: the console may still tell
    try:
        text = console_log(vm.domain, vm.host)["output"]
    except VpdError as exc:
        return seed.Evidence(None, "console", str(exc))
    if seed.finished_on_console(text):
        return seed.Evidence(True, "console", "cloud-init's final message is on the console")
    return seed.Evidence(None, "console", "no final message from cloud-init on the console")


def _learn_host_keys(session: Session, vm) -> tuple[list, str]:
    """The guest's host keys as it showed them at first boot: from its console log (cloud-init's
    KEYS block, checked against its FINGERPRINTS block), else the key files read through the
    guest agent, checked against the console's fingerprints."""
    from . import guest_ssh, lifecycle

    log = session.call(vm.host, lambda _c: lifecycle.console_log(vm.domain, vm.host))
    keys, prints = guest_ssh.console_host_keys(log["output"])
    if keys:
        return guest_ssh.matching(keys, prints, "on the console"), "console"
    # The agent is the guest's own channel too (virtio-serial, not the network): an image whose
    # cloud-init prints no keys (keys_to_console off) is read there.
    ga = agent.GuestAgent(vm.domain)
    found = []
    for path in guest_ssh.HOST_KEY_FILES.values():
        try:
            line = session.call(vm.host, lambda _c, path=path: ga.read_file(path).decode(errors="replace"))
        except agent.AgentNotInstalled:
            raise
        except agent.AgentError:
            continue  # no key of that type
        if (key := guest_ssh.public_key_line(line)) is not None:
            found.append(key)
    if not found:
        raise VpdError(f"VM {vm.domain.name()}: neither its console nor its guest agent shows an SSH host key, so "
                       "vpd cannot check whom it talks to",
                       hint=f"`vpd vm console {vm.domain.name()} --log` shows what the guest printed (cloud-init's "
                            "keys_to_console module prints the keys at first boot)")
    return guest_ssh.matching(found, prints, "read through the guest agent"), \
        "console fingerprints + agent" if prints else "agent"


def ssh(session: Session, name: str, host_ref: str | None = None, user: str | None = None,
        identity: str | None = None, command: list[str] | None = None, capture: bool = False):
    """SSH into the guest as the user cloud-init made (or `user`), with the key given at creation
    (or `identity`), its host key checked against the one recorded from its first boot (recorded
    now, in the VM's metadata, on first use). Through the host when the guest is on its private
    network. `capture`: run `command`, return its output; else ssh runs on this terminal."""
    import subprocess

    import libvirt

    from ..connect.ssh import exec_step
    from ..core import steps
    from ..ops.locks import vm_key
    from . import guest_ssh

    vm = locate(session, name, host_ref)
    xml = session.call(vm.host, lambda _c: vm.domain.XMLDesc(0))
    access = guest_ssh.access_of(xml)
    user = user or (access.user if access else None)
    if user is not None:
        guest_ssh.check_user(user)
    else:
        raise UsageError(f"VM {name} was not given a user through vpd's cloud-init: say which with --user")
    if identity is not None:
        if not Path(identity).expanduser().is_file():
            raise UsageError(f"no identity file {identity}")
        identity = str(Path(identity).expanduser().resolve())
    elif access is not None:
        identity = access.identity()
    keys, source = guest_ssh.host_keys_of(xml)
    if not keys:
        keys, source = _learn_host_keys(session, vm)
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | (libvirt.VIR_DOMAIN_AFFECT_CONFIG
                                                  if session.call(vm.host, lambda _c: vm.domain.isPersistent()) else 0)
        with Operation(session, "vm.host-keys", target=f"{vm.host.name}/{name}", locks=[vm_key(name)],
                       source=source) as op:
            session.call(vm.host, lambda _c: vm.domain.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, guest_ssh.host_keys_element(keys, source), "vpd",
                guest_ssh.HOST_KEYS_NS, flags))
            op.result = {"keys": [f"{k.type} {k.fingerprint}" for k in keys]}
    address = agent.first_ipv4(session.call(vm.host, lambda _c: agent.addresses(vm.domain)))
    if address is None:
        raise VpdError(f"VM {name} has no IPv4 address vpd can find", hint=f"`vpd vm ip {name}` says what it tried")
    uuid = session.call(vm.host, lambda _c: vm.domain.UUIDString())
    plan = guest_ssh.prepare(vm.host, uuid, address, user, identity, keys, list(command or []), batch=capture)
    if steps.active():
        steps.record(exec_step("localhost", None, plan.argv))
    said = {"host": vm.host.name, "vm": name, "address": address, "user": user, "identity": identity,
            "host_keys": [f"{k.type} {k.fingerprint}" for k in keys], "host_keys_from": source,
            "ssh_config": str(plan.config), "argv": plan.argv}
    if not capture:
        return WithExitCode(said, subprocess.run(plan.argv).returncode)
    proc = subprocess.run(plan.argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    if proc.returncode == 255:
        raise VpdError(f"ssh to {user}@{address} ({name}) failed: "
                       f"{proc.stderr.decode(errors='replace').strip()}",
                       hint="a host key mismatch means the guest is not the one that booted first; "
                            "`vpd vm ssh --explain` shows the ssh command")
    return WithExitCode({**said, "exit_code": proc.returncode, "stdout": proc.stdout.decode(errors="replace"),
                         "stderr": proc.stderr.decode(errors="replace")}, proc.returncode)
