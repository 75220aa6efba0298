"""Container operations as front ends run them: each takes the Session first, resolves the
host (or finds the container across the inventory, as for VMs), checks its input before
anything is sent, and wraps every change in an Operation (journal, lock, undo)."""
from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..connect.inventory import Host
from ..core.errors import NotFound, UsageError, VpdError
from ..ops import Operation, Session
from . import checks, engine, images, instances
from .client import IncusClient, endpoint_for

_clients: weakref.WeakKeyDictionary[Session, dict[str, IncusClient]] = weakref.WeakKeyDictionary()


def ct_key(name: str) -> str:
    """A container is locked by name across the inventory, as a VM is."""
    return f"ct:{name}"


def client(session: Session, host: Host) -> IncusClient:
    per = _clients.setdefault(session, {})
    if host.name not in per:
        per[host.name] = IncusClient(endpoint_for(host), name=host.name)
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
           limits: dict[str, str] | None = None, start: bool = True) -> dict:
    """Create a container from a local image and start it; a failed start removes it again."""
    checks.check_ct_name(name)
    checks.check_image_ref(image)
    config = dict(limits or {})
    for key, value in config.items():
        checks.check_config(key, value)
    host = _one_host(session, host_ref)
    c = client(session, host)
    image_info = images.resolve_image(c, image)
    taken = [h.name for h, has, _ in _per_host(session, session.hosts(), lambda cl: name in instances.names(cl)) if has]
    if taken:
        raise UsageError(f"container {name!r} already exists on {', '.join(taken)}",
                         hint="container names are unique across the inventory, as VM names")
    with Operation(session, "ct.launch", target=f"{host.name}/{name}", locks=[ct_key(name)], image=image,
                   config=config) as op:
        op.plan("container", name, host.name, image=image_info.fingerprint)
        op.progress("creating", 0, 2)
        instances.create(c, name, image_info.fingerprint, config)
        op.undo.push(lambda: _force_delete(c, name), f"delete container {name}")
        if start:
            op.progress("starting", 1, 2)
            instances.change_state(c, name, "start", timeout=30)
        op.progress("done", 2, 2)
        op.result = {"host": host.name, "name": name, "image": image, "fingerprint": image_info.fingerprint,
                     "config": config, "started": start}
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

