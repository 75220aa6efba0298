"""Container operations as front ends run them: each takes the Session first, resolves the
host (or finds the container across the inventory, as for VMs), checks its input before
anything is sent, and wraps every change in an Operation (journal, lock, undo)."""
from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from ..connect.inventory import Host
from ..core.errors import NotFound, UsageError, VpdError
from ..ops import Operation, Session
from . import checks, editing, engine, images, instances, terminal, trust
from .client import IncusClient, endpoint_for, path

_clients: weakref.WeakKeyDictionary[Session, dict[str, IncusClient]] = weakref.WeakKeyDictionary()


def ct_key(name: str) -> str:
    """A container is locked by name across the inventory, as a VM is."""
    return f"ct:{name}"


def client(session: Session, host: Host) -> IncusClient:
    per = _clients.setdefault(session, {})
    if host.name not in per:
        endpoint = endpoint_for(host)
        cert = server_cert = None
        if endpoint.kind == "https":  # vpd's certificate, and the host's as pinned by `vpd ct trust`
            crt, key = trust.client_cert_paths()
            cert = (crt, key) if crt.exists() and key.exists() else None
            pinned = trust.pinned_server_cert(host.name)
            server_cert = pinned if pinned.exists() else None
        per[host.name] = IncusClient(endpoint, name=host.name, cert=cert, server_cert=server_cert)
    return per[host.name]


def _one_host(session: Session, host_ref: str | None) -> Host:
    if host_ref:
        return session.host(host_ref)
    hosts = session.hosts()
    if len(hosts) == 1:
        return hosts[0]
    raise UsageError("give --host", hint="hosts: " + ", ".join(h.name for h in hosts))


def _per_host(session: Session, hosts: list[Host], fn) -> list[tuple[Host, Any, str | None]]:
    """fn(client) on every host at once: (host, result, error text)."""
    def one(h: Host):
        try:
            return h, fn(client(session, h)), None
        except VpdError as exc:
            return h, None, exc.message
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def locate(session: Session, name: str, host_ref: str | None = None) -> tuple[Host, IncusClient]:
    """The host holding container `name`: the one given, else the only one that has it."""
    checks.check_ct_name(name)
    if host_ref:
        host = session.host(host_ref)
        instances.get(client(session, host), name)
        return host, client(session, host)
    found = _per_host(session, session.hosts(), lambda c: name in instances.names(c))
    holders = [h for h, has, _ in found if has]
    if len(holders) == 1:
        if len(found) > 1:
            session.notice(f"container {name} is on {holders[0].name}")
        return holders[0], client(session, holders[0])
    if holders:
        raise UsageError(f"container {name!r} exists on several hosts: {', '.join(h.name for h in holders)}",
                         hint="say which with --host")
    down = [f"{h.name} ({err})" for h, _, err in found if err]
    raise NotFound(f"no container {name!r} on any host", hint=("not reachable: " + "; ".join(down)) if down
                   else "`vpd ct list` shows them")


# --- the engine -------------------------------------------------------------------------

def init(session: Session, host_ref: str, subnet: str | None = None, https_address: str | None = None) -> dict:
    """The seed's `lxd init --auto`: a dir pool, a bridge without NAT on a free subnet, the
    default profile; a second run changes nothing."""
    host = session.host(host_ref)
    c = client(session, host)
    wanted = engine.parse_subnet(subnet) if subnet else None
    with Operation(session, "ct.init", target=host.name, subnet=subnet) as op:
        current = engine.existing_subnet(c)
        net = wanted or current or engine.pick_subnet(engine.used_networks(c))
        op.result = engine.initialise(c, engine.Preseed(net, https_address=https_address), host.name).to_dict()
    return op.result


def trust_host(session: Session, host_ref: str, token_text: str) -> dict:
    """Have a host's incusd trust vpd's client certificate, with a token made there
    (`incus config trust add vpd`); the server's certificate is checked against the token and
    pinned first. Hosts reached through a unix socket need nothing."""
    host = session.host(host_ref)
    endpoint = endpoint_for(host)
    if endpoint.kind != "https":
        raise UsageError(f"vpd reaches incusd on {host.name} through its socket ({endpoint}): nothing to trust",
                         hint="trust is for hosts whose inventory entry reaches incusd over https://")
    token = trust.parse_token(token_text)
    with Operation(session, "ct.trust", target=host.name, endpoint=str(endpoint)) as op:  # never the token
        crt, key = trust.ensure_client_cert()
        pinned = trust.pin(host.name, endpoint.address, token)
        _clients.get(session, {}).pop(host.name, None)
        c = client(session, host)
        if (c.get(path()) or {}).get("auth") != "trusted":
            c.request("POST", path("certificates"), json={"type": "client", "name": token.client_name or "vpd",
                                                          "trust_token": token.text})
        # A fresh connection: incusd decides trust per TLS connection.
        _clients.get(session, {}).pop(host.name, None)
        auth = (client(session, host).get(path()) or {}).get("auth")
        if auth != "trusted":
            raise VpdError(f"incusd on {host.name} still says {auth!r} after taking the token")
        op.result = {"host": host.name, "endpoint": str(endpoint), "trusted": True,
                     "server_fingerprint": token.fingerprint, "server_cert": str(pinned), "client_cert": str(crt)}
    return op.result


# --- images -----------------------------------------------------------------------------

def image_build(out_dir: str | None = None) -> dict:
    return images.build_busybox(Path(out_dir) if out_dir else None).to_dict()


def image_import(session: Session, first: str, second: str, alias: str, host_ref: str | None = None) -> dict:
    checks.check_alias(alias)
    metadata, rootfs = images.order_pair(first, second)
    host = _one_host(session, host_ref)
    c = client(session, host)
    if images.alias_exists(c, alias):
        raise UsageError(f"image alias {alias!r} already exists on {host.name}",
                         hint=f"`vpd ct image delete {alias} --host {host.name}` first, or pick another alias")
    with Operation(session, "ct.image.import", target=f"{host.name}/{alias}",
                   locks=[f"ct-image:{host.name}:{alias}"], metadata=str(metadata), rootfs=str(rootfs)) as op:
        op.plan("image", alias, host.name)
        op.progress("uploading", 0, 2)
        fingerprint = images.upload_split(c, metadata, rootfs)
        op.undo.push(lambda: images.delete_image(c, fingerprint), f"delete image {fingerprint[:12]}")
        images.add_alias(c, alias, fingerprint)
        op.progress("uploaded", 2, 2)
        op.result = {"host": host.name, "alias": alias, "fingerprint": fingerprint}
    return op.result


def image_list(session: Session, host_refs: tuple[str, ...] = ()) -> dict:
    rows = _per_host(session, session.hosts(host_refs), lambda c: images.list_images(c))
    return {"hosts": [{"host": h.name, "error": err,
                       "images": [dict(i.to_dict(), host=h.name) for i in imgs or []]} for h, imgs, err in rows]}


def image_delete(session: Session, ref: str, host_ref: str | None = None) -> dict:
    host = _one_host(session, host_ref)
    c = client(session, host)
    image = images.resolve_image(c, ref)
    with Operation(session, "ct.image.delete", target=f"{host.name}/{ref}",
                   locks=[f"ct-image:{host.name}:{ref}"]) as op:
        images.delete_image(c, image.fingerprint)
        op.result = {"host": host.name, "deleted": image.fingerprint, "aliases": image.aliases}
    return op.result


# --- containers -------------------------------------------------------------------------

def launch(session: Session, image: str, name: str, host_ref: str | None = None,
           limits: dict[str, str] | None = None, start: bool = True, profiles: list[str] | None = None) -> dict:
    """Create a container from a local image and start it; a failed start removes it again."""
    checks.check_ct_name(name)
    profile_names = [checks.check_profile_name(p) for p in profiles or ["default"]]
    checks.check_image_ref(image)
    config = dict(limits or {})
    for key, value in config.items():
        checks.check_config(key, value)
    host = _one_host(session, host_ref)
    c = client(session, host)
    image_info = images.resolve_image(c, image)
    _check_profiles_exist(c, profile_names)
    taken = [h.name for h, has, _ in _per_host(session, session.hosts(), lambda cl: name in instances.names(cl)) if has]
    if taken:
        raise UsageError(f"container {name!r} already exists on {', '.join(taken)}",
                         hint="container names are unique across the inventory, as VM names")
    with Operation(session, "ct.launch", target=f"{host.name}/{name}", locks=[ct_key(name)], image=image,
                   config=config, profiles=profile_names) as op:
        op.plan("container", name, host.name, image=image_info.fingerprint)
        op.progress("creating", 0, 2)
        instances.create(c, name, image_info.fingerprint, config, profile_names)
        op.undo.push(lambda: _force_delete(c, name), f"delete container {name}")
        if start:
            op.progress("starting", 1, 2)
            instances.change_state(c, name, "start", timeout=30)
        op.progress("done", 2, 2)
        op.result = {"host": host.name, "name": name, "image": image, "fingerprint": image_info.fingerprint,
                     "config": config, "profiles": profile_names, "started": start}
    return op.result


def _force_delete(c: IncusClient, name: str) -> None:
    if instances.status(c, name) not in ("stopped", ""):
        instances.change_state(c, name, "stop", force=True)
    instances.delete(c, name)


def list_cts(session: Session, host_refs: tuple[str, ...] = ()) -> dict:
    rows = _per_host(session, session.hosts(host_refs), lambda c: instances.list_containers(c, c.name))
    return {"hosts": [{"host": h.name, "error": err, "containers": [s.to_dict() for s in cts or []]}
                      for h, cts, err in rows]}


def act(session: Session, action: str, name: str, host_ref: str | None = None, *, force: bool = False,
        timeout: int | None = None) -> dict:
    """start, stop, restart, pause (freeze), resume (unfreeze)."""
    if action not in instances.ACTIONS:
        raise UsageError(f"unknown action {action!r}")
    if timeout is not None and not 0 < timeout <= 3600:
        raise UsageError("--timeout must be 1-3600 seconds")
    host, c = locate(session, name, host_ref)
    with Operation(session, f"ct.{action}", target=f"{host.name}/{name}", locks=[ct_key(name)], force=force) as op:
        instances.change_state(c, name, action, force=force, timeout=timeout)
        op.result = {"host": host.name, "name": name, "action": action, "status": instances.status(c, name)}
    return op.result


def delete(session: Session, name: str, host_ref: str | None = None, force: bool = False) -> dict:
    host, c = locate(session, name, host_ref)
    state = instances.status(c, name)
    if state != "stopped" and not force:
        raise UsageError(f"container {name} is {state}", hint="stop it first, or give --force")
    with Operation(session, "ct.delete", target=f"{host.name}/{name}", locks=[ct_key(name)], force=force) as op:
        if state != "stopped":
            instances.change_state(c, name, "stop", force=True)
        instances.delete(c, name)
        op.result = {"host": host.name, "name": name, "deleted": True}
    return op.result


def info(session: Session, name: str, host_ref: str | None = None) -> dict:
    host, c = locate(session, name, host_ref)
    return {"host": host.name, **instances.info(c, name)}


def config_set(session: Session, name: str, key: str, value: str, host_ref: str | None = None) -> dict:
    key, value = checks.check_config(key, value)
    host, c = locate(session, name, host_ref)
    with Operation(session, "ct.config.set", target=f"{host.name}/{name}", locks=[ct_key(name)],
                   key=key, value=value) as op:
        before = (instances.get(c, name).get("config") or {}).get(key)
        instances.set_config(c, name, {key: value})
        op.result = {"host": host.name, "name": name, "key": key, "value": value, "previous": before}
    return op.result


def exec_(session: Session, name: str, argv: list[str], host_ref: str | None = None) -> dict:
    if not argv:
        raise UsageError("give the command to run after --", hint="e.g. vpd ct exec web1 -- ls -la")
    host, c = locate(session, name, host_ref)
    with Operation(session, "ct.exec", target=f"{host.name}/{name}", argv=list(argv)) as op:
        result = instances.run(c, name, list(argv))
        op.result = {"host": host.name, "name": name, "exit_code": result.exit_code}
    return {**op.result, "stdout": result.stdout, "stderr": result.stderr}


MAX_FILE = 256 * 2**20  # files go through memory in one request


def file_push(session: Session, source: str, target: str, host_ref: str | None = None) -> dict:
    name, ct_path = checks.split_ct_path(target)
    src = Path(source)
    if not src.is_file():
        raise UsageError(f"{source!r} is not a file")
    if src.stat().st_size > MAX_FILE:
        raise UsageError(f"{source!r} is larger than {MAX_FILE // 2**20} MiB")
    host, c = locate(session, name, host_ref)
    data = src.read_bytes()
    with Operation(session, "ct.file.push", target=f"{host.name}/{name}{ct_path}", source=str(src)) as op:
        instances.push(c, name, ct_path, data, mode=src.stat().st_mode & 0o777)
        op.result = {"host": host.name, "name": name, "path": ct_path, "bytes": len(data)}
    return op.result


def file_pull(session: Session, source: str, dest: str, host_ref: str | None = None) -> dict:
    name, ct_path = checks.split_ct_path(source)
    target = Path(dest)
    if target.is_dir():
        target = target / Path(ct_path).name
    if not target.parent.is_dir():
        raise UsageError(f"directory {str(target.parent)!r} does not exist")
    host, c = locate(session, name, host_ref)
    data = instances.pull(c, name, ct_path)
    tmp = target.with_name(f".{target.name}.vpd-partial")
    tmp.write_bytes(data)
    tmp.replace(target)
    return {"host": host.name, "name": name, "path": ct_path, "dest": str(target), "bytes": len(data)}



def file_edit(session: Session, target: str, editor: list[str], host_ref: str | None = None) -> dict:
    """Pull a file, open it in the user's editor, push it back only if it changed (mode and
    owner kept)."""
    name, ct_path = checks.split_ct_path(target)
    host, c = locate(session, name, host_ref)
    data, mode, uid, gid = instances.pull_file(c, name, ct_path)
    new = editing.edit_bytes(data, editor, suffix="-" + Path(ct_path).name)
    result = {"host": host.name, "name": name, "path": ct_path, "changed": new is not None,
              "bytes": len(data if new is None else new)}
    if new is None:
        return result
    with Operation(session, "ct.file.edit", target=f"{host.name}/{name}{ct_path}", locks=[ct_key(name)]) as op:
        instances.push(c, name, ct_path, new, mode=mode, uid=uid, gid=gid)
        op.result = result
    return result


# --- interactive: exec on a terminal, console -------------------------------------------------

def exec_interactive(session: Session, name: str, argv: list[str], host_ref: str | None = None,
                     term: str = "xterm") -> dict:
    """Run argv on a pty in the container, joined to this terminal; its exit code comes back."""
    if not argv:
        raise UsageError("give the command to run after --", hint="e.g. vpd ct exec web1 -- sh")
    host, c = locate(session, name, host_ref)
    with Operation(session, "ct.exec", target=f"{host.name}/{name}", argv=list(argv), interactive=True) as op:
        width, height = terminal.terminal_size(1)
        op_id, fds = instances.exec_start(c, name, list(argv), {"TERM": term}, width, height)
        terminal.attach(c, op_id, fds)
        done = c.wait(path("operations", op_id), 60)
        op.result = {"host": host.name, "name": name,
                     "exit_code": int((done.get("metadata") or {}).get("return", -1))}
    return op.result


def console_log(session: Session, name: str, host_ref: str | None = None) -> dict:
    host, c = locate(session, name, host_ref)
    return {"host": host.name, "name": name, "log": instances.console_log(c, name)}


def console(session: Session, name: str, host_ref: str | None = None, on_ready=None) -> dict:
    """The container's console on this terminal until ctrl-a q (or the end of stdin)."""
    host, c = locate(session, name, host_ref)
    if instances.status(c, name) != "running":
        raise UsageError(f"container {name} is not running", hint=f"`vpd ct start {name}` first")
    width, height = terminal.terminal_size(1)
    op_id, fds = instances.console_start(c, name, width, height)
    terminal.attach(c, op_id, fds, detach=terminal.DETACH, on_ready=on_ready)
    return {"host": host.name, "name": name, "detached": True}


# --- snapshots --------------------------------------------------------------------------------

def snapshot_list(session: Session, name: str, host_ref: str | None = None) -> dict:
    host, c = locate(session, name, host_ref)
    return {"host": host.name, "name": name, "snapshots": instances.snapshots(c, name)}


def _snapshot_names(c: IncusClient, name: str) -> list[str]:
    return [s["name"] for s in instances.snapshots(c, name)]


def snapshot_create(session: Session, name: str, snap: str, host_ref: str | None = None) -> dict:
    checks.check_snapshot_name(snap)
    host, c = locate(session, name, host_ref)
    if snap in _snapshot_names(c, name):
        raise UsageError(f"container {name} already has a snapshot {snap!r}")
    with Operation(session, "ct.snapshot.create", target=f"{host.name}/{name}", locks=[ct_key(name)],
                   snapshot=snap) as op:
        op.plan("ct-snapshot", f"{name}/{snap}", host.name)
        instances.snapshot_create(c, name, snap)
        op.result = {"host": host.name, "name": name, "snapshot": snap}
    return op.result


def _existing_snapshot(c: IncusClient, name: str, snap: str) -> None:
    checks.check_snapshot_name(snap)
    have = _snapshot_names(c, name)
    if snap not in have:
        raise NotFound(f"container {name} has no snapshot {snap!r}",
                       hint=("snapshots: " + ", ".join(have)) if have else "it has none")


def snapshot_restore(session: Session, name: str, snap: str, host_ref: str | None = None) -> dict:
    checks.check_snapshot_name(snap)
    host, c = locate(session, name, host_ref)
    _existing_snapshot(c, name, snap)
    with Operation(session, "ct.snapshot.restore", target=f"{host.name}/{name}", locks=[ct_key(name)],
                   snapshot=snap) as op:
        instances.snapshot_restore(c, name, snap)
        op.result = {"host": host.name, "name": name, "snapshot": snap, "status": instances.status(c, name)}
    return op.result


def snapshot_delete(session: Session, name: str, snap: str, host_ref: str | None = None) -> dict:
    checks.check_snapshot_name(snap)
    host, c = locate(session, name, host_ref)
    _existing_snapshot(c, name, snap)
    with Operation(session, "ct.snapshot.delete", target=f"{host.name}/{name}", locks=[ct_key(name)],
                   snapshot=snap) as op:
        instances.snapshot_delete(c, name, snap)
        op.result = {"host": host.name, "name": name, "snapshot": snap, "deleted": True}
    return op.result


# --- profiles ---------------------------------------------------------------------------------

def _check_profiles_exist(c: IncusClient, names: list[str]) -> None:
    have = {p["name"] for p in instances.profiles(c)}
    missing = [n for n in names if n not in have]
    if missing:
        raise NotFound(f"no profile {', '.join(missing)} on {c.name}", hint="profiles: " + ", ".join(sorted(have)))


def profile_list(session: Session, host_refs: tuple[str, ...] = ()) -> dict:
    rows = _per_host(session, session.hosts(host_refs), instances.profiles)
    return {"hosts": [{"host": h.name, "error": err, "profiles": profs or []} for h, profs, err in rows]}


def profile_create(session: Session, name: str, host_ref: str | None = None, limits: dict[str, str] | None = None,
                   description: str = "") -> dict:
    checks.check_profile_name(name)
    body = checks.check_profile({"description": description, "config": dict(limits or {}), "devices": {}})
    host = _one_host(session, host_ref)
    c = client(session, host)
    if name in {p["name"] for p in instances.profiles(c)}:
        raise UsageError(f"profile {name!r} already exists on {host.name}",
                         hint=f"`vpd ct profile edit {name} --host {host.name}` changes it")
    with Operation(session, "ct.profile.create", target=f"{host.name}/{name}",
                   locks=[f"ct-profile:{host.name}:{name}"], config=body["config"]) as op:
        op.plan("ct-profile", name, host.name)
        instances.profile_create(c, name, body)
        op.result = {"host": host.name, "profile": name, **body}
    return op.result


def profile_edit(session: Session, name: str, editor: list[str], host_ref: str | None = None) -> dict:
    """The profile as YAML in the user's editor; checked whole, then sent (nothing if unchanged)."""
    checks.check_profile_name(name)
    host = _one_host(session, host_ref)
    c = client(session, host)
    before = instances.profile(c, name)
    text = yaml.safe_dump(before, default_flow_style=False, sort_keys=True)
    new = editing.edit_bytes(text.encode(), editor, suffix=".yaml")
    if new is None:
        return {"host": host.name, "profile": name, "changed": False, **before}
    try:
        parsed = yaml.safe_load(new.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"the edited profile is not valid YAML: {exc}", hint="nothing was changed") from None
    body = checks.check_profile(parsed)
    with Operation(session, "ct.profile.edit", target=f"{host.name}/{name}",
                   locks=[f"ct-profile:{host.name}:{name}"], config=body["config"]) as op:
        instances.profile_put(c, name, body)
        op.undo.push(lambda: instances.profile_put(c, name, before), f"restore profile {name}")
        op.result = {"host": host.name, "profile": name, "changed": True, **body}
    return op.result


def profile_apply(session: Session, name: str, profile_names: list[str], host_ref: str | None = None) -> dict:
    """Set a container's profiles, in order (the seed's `lxc profile apply`; later ones win)."""
    wanted = [checks.check_profile_name(p) for p in profile_names]
    if not wanted or len(set(wanted)) != len(wanted):
        raise UsageError("give one or more distinct profiles, e.g. default,small")
    host, c = locate(session, name, host_ref)
    _check_profiles_exist(c, wanted)
    with Operation(session, "ct.profile.apply", target=f"{host.name}/{name}", locks=[ct_key(name)],
                   profiles=wanted) as op:
        before = instances.get(c, name).get("profiles") or []
        instances.set_profiles(c, name, wanted)
        op.result = {"host": host.name, "name": name, "profiles": wanted, "previous": before}
    return op.result


def profile_delete(session: Session, name: str, host_ref: str | None = None) -> dict:
    checks.check_profile_name(name)
    if name == "default":
        raise UsageError("the default profile cannot be deleted")
    host = _one_host(session, host_ref)
    c = client(session, host)
    used = next((p["used_by"] for p in instances.profiles(c) if p["name"] == name), None)
    if used is None:
        raise NotFound(f"no profile {name!r} on {host.name}")
    if used:
        raise UsageError(f"profile {name} is used by {', '.join(used)}", hint="`vpd ct profile apply` them first")
    with Operation(session, "ct.profile.delete", target=f"{host.name}/{name}",
                   locks=[f"ct-profile:{host.name}:{name}"]) as op:
        instances.profile_delete(c, name)
        op.result = {"host": host.name, "profile": name, "deleted": True}
    return op.result


# --- copy and move between hosts --------------------------------------------------------------

def _name_free(session: Session, name: str) -> None:
    taken = [h.name for h, has, _ in _per_host(session, session.hosts(), lambda cl: name in instances.names(cl))
             if has]
    if taken:
        raise UsageError(f"container {name!r} already exists on {', '.join(taken)}",
                         hint="container names are unique across the inventory, as VM names")


def _missing_profiles(src: IncusClient, dst: IncusClient, name: str) -> list[str]:
    wanted = instances.get(src, name).get("profiles") or []
    have = {p["name"] for p in instances.profiles(dst)}
    return [p for p in wanted if p not in have]


def copy(session: Session, name: str, new_name: str, to_host: str | None = None,
         host_ref: str | None = None) -> dict:
    """A new container `new_name` with `name`'s files, snapshots and configuration, on the same
    host or another; the copy is left stopped. A running source is copied as it is (stateless)."""
    checks.check_ct_name(new_name)
    host, c = locate(session, name, host_ref)
    target = session.host(to_host) if to_host else host
    dst = client(session, target)
    _name_free(session, new_name)
    missing = _missing_profiles(c, dst, name)
    if missing:
        raise UsageError(f"{target.name} has no profile {', '.join(missing)}",
                         hint=f"create it there first: vpd ct profile create NAME --host {target.name}")
    with Operation(session, "ct.copy", target=f"{host.name}/{name}", locks=[ct_key(name), ct_key(new_name)],
                   to=f"{target.name}/{new_name}") as op:
        op.plan("container", new_name, target.name)
        op.progress("copying", 0, 1)
        if target.name == host.name:
            src = instances.get(c, name)
            dst.request("POST", path("instances"), json={
                "name": new_name, "type": "container", "profiles": src.get("profiles") or ["default"],
                "source": {"type": "copy", "source": name, "instance_only": False}})
        else:
            instances.migrate(c, dst, name, new_name, keep_identity=False)
        op.undo.push(lambda: _force_delete(dst, new_name), f"delete container {new_name} on {target.name}")
        op.progress("copied", 1, 1)
        op.result = {"host": host.name, "name": name, "to_host": target.name, "new_name": new_name,
                     "status": instances.status(dst, new_name)}
    return op.result


def move(session: Session, name: str, to_host: str, host_ref: str | None = None, stateless: bool = False) -> dict:
    """Move a container to another host: files, snapshots, configuration and MAC addresses. A
    running one needs --stateless: it is stopped, moved and started there (live migration needs
    CRIU, which does not work on this kernel: docs/containers.md)."""
    host, c = locate(session, name, host_ref)
    target = session.host(to_host)
    if target.name == host.name:
        raise UsageError(f"container {name} is already on {host.name}")
    dst = client(session, target)
    state = instances.status(c, name)
    if state not in ("stopped", "running"):
        raise UsageError(f"container {name} is {state}", hint="resume or stop it first")
    if state == "running" and not stateless:
        raise UsageError(f"container {name} is running",
                         hint="stop it first, or give --stateless (stop, move, start on the new host)")
    missing = _missing_profiles(c, dst, name)
    if missing:
        raise UsageError(f"{target.name} has no profile {', '.join(missing)}",
                         hint=f"create it there first: vpd ct profile create NAME --host {target.name}")
    if name in instances.names(dst):
        raise UsageError(f"{target.name} already has a container {name!r}")
    with Operation(session, "ct.move", target=f"{host.name}/{name}", locks=[ct_key(name)], to=target.name,
                   stateless=stateless) as op:
        op.plan("container", name, target.name)
        # Once the source is deleted, the copy on the target is the container: no undo step may
        # touch either any more (a failed start there leaves it stopped, not gone).
        source_gone = False

        def unless_moved(step):
            return lambda: None if source_gone else step()

        if state == "running":
            op.progress("stopping", 0, 3)
            instances.change_state(c, name, "stop", timeout=30)
            op.undo.push(unless_moved(lambda: instances.change_state(c, name, "start", timeout=30)),
                         f"start {name} again")
        op.progress("moving", 1, 3)
        instances.migrate(c, dst, name, name, keep_identity=True)
        op.undo.push(unless_moved(lambda: _force_delete(dst, name)), f"delete the copy of {name} on {target.name}")
        instances.delete(c, name)
        source_gone = True
        if state == "running":
            op.progress("starting", 2, 3)
            instances.change_state(dst, name, "start", timeout=30)
        op.progress("moved", 3, 3)
        op.result = {"host": target.name, "name": name, "from_host": host.name,
                     "status": instances.status(dst, name)}
    return op.result
