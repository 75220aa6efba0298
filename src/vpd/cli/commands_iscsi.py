"""`vpd iscsi target ...`: export storage of a host over iSCSI (Práctica 6)."""
from __future__ import annotations

import click

from ..core import journal
from ..core.errors import UsageError
from ..storage import iscsi_target, secrets
from ..storage.iqn import check_iqn
from ..storage.pools import check_chap_user, find_pool
from ..storage.volumes import describe, find_volume, parse_vol_ref, volume_users
from ..xml.checks import require_absolute_path
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, table


@cli.group()
def iscsi() -> None:
    """iSCSI: targets (LIO or tgt) that initiators reach through iscsi/iscsi-direct pools."""


@iscsi.group()
def target() -> None:
    """iSCSI targets on the inventory's hosts."""


@target.command("create")
@click.option("--host", "host_name", required=True, help="The target host.")
@click.option("--iqn", required=True, help="The target's IQN, e.g. iqn.2024-01.org.example:san1.")
@click.option("--vol", "vol_ref", metavar="POOL/VOL", help="A raw volume of that host to export.")
@click.option("--file", "file_path", metavar="PATH", help="A file or block device of that host to export.")
@click.option("--lun", default=1, show_default=True, type=int, help="LUN number (tgt keeps 0 for its controller).")
@click.option("--allow", multiple=True, required=True, metavar="HOST|HOST=IQN|IQN",
              help="An initiator admitted (ACL) and its host admitted to 3260/tcp; repeatable.")
@click.option("--chap", "chap_user", help="CHAP user; the secret from --chap-secret-file or $VPD_CHAP_SECRET.")
@click.option("--chap-secret-file", type=click.Path(dir_okay=False))
@json_option
@click.pass_context
@handle_errors
def target_create(ctx, host_name, iqn, vol_ref, file_path, lun, allow, chap_user, chap_secret_file, as_json) -> None:
    """Export a volume or file as an iSCSI LUN to the allowed initiators only."""
    iqn = check_iqn(iqn, "target IQN")
    if bool(vol_ref) == bool(file_path):
        raise UsageError("give exactly one of --vol POOL/VOL or --file PATH")
    if chap_user:
        check_chap_user(chap_user)
    elif chap_secret_file:
        raise UsageError("--chap-secret-file needs --chap USER")
    password = secrets.read_password(chap_secret_file) if chap_user else None
    if chap_user and password is None:
        raise UsageError("--chap needs the secret: --chap-secret-file FILE or $VPD_CHAP_SECRET")
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    initiators = iscsi_target.parse_allow(list(allow), inv)
    if vol_ref:
        pool_name, vol_name = parse_vol_ref(vol_ref)
        conns = context.connections(ctx)

        def resolve(c):
            info = describe(host, pool_name, find_volume(host, find_pool(c, host, pool_name), vol_name))
            if info.format not in (None, "raw"):
                raise UsageError(f"{vol_ref} is {info.format}: an initiator would see its {info.format} bytes",
                                 hint="export a raw volume (vpd vol create ... --format raw)")
            users = volume_users(c, pool_name, vol_name, info.path)
            if users:
                raise UsageError(f"{vol_ref} is a disk of VMs on {host.name}: {', '.join(users)}")
            return info.path

        path = conns.call(host, resolve)
    else:
        path = require_absolute_path(file_path, "--file")
    with journal.record("iscsi.target.create", target=f"{host.name}/{iqn}", path=path, lun=lun,
                        allow=[i.iqn for i in initiators], chap_user=chap_user) as entry:
        entry.result = iscsi_target.create_target(host, iqn, path, lun, initiators, chap_user, password)
    r = entry.result
    if as_json:
        emit_json(r)
    elif not r["changed"]:
        console.print(f"target {iqn} already exports {path} on {host.name}: nothing to do", highlight=False)
    else:
        console.print(f"target {iqn} on {host.name} ({r['backend']}): LUN {lun} = {path}; initiators "
                      f"{', '.join(i.iqn for i in initiators)}" + (f"; CHAP user {chap_user}" if chap_user else ""),
                      highlight=False)
        for line in r["firewall"]:
            console.print(f"  {line}", highlight=False)


@target.command("list")
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@json_option
@click.pass_context
@handle_errors
def target_list(ctx, names, as_json) -> None:
    """Targets of every host: LUNs, ACL, CHAP users (never their secrets), sessions."""
    per_host = iscsi_target.list_targets(context.inventory(ctx).select(list(names)))
    if as_json:
        emit_json({"hosts": per_host})
        return
    table("iSCSI targets", ["host", "backend", "iqn", "LUNs", "allowed initiators", "CHAP", "sessions"],
          [[h["host"], h["backend"], t["iqn"], ", ".join(f"{k}={v}" for k, v in t["luns"].items()),
            ", ".join(t["acl"]), ", ".join(t["chap_users"]) or None, t["sessions"]]
           for h in per_host for t in h["targets"]])
    for h in per_host:
        if h["error"]:
            console.print(f"[red]{h['host']}[/]: {h['error']}", highlight=False)


@target.command("delete")
@click.option("--host", "host_name", required=True)
@click.option("--iqn", required=True)
@json_option
@click.pass_context
@handle_errors
def target_delete(ctx, host_name, iqn, as_json) -> None:
    """Remove a target (its LUN's data stays), its CHAP account and its firewall openings."""
    iqn = check_iqn(iqn, "target IQN")
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    with journal.record("iscsi.target.delete", target=f"{host.name}/{iqn}") as entry:
        entry.result = iscsi_target.delete_target(host, iqn, inv)
    r = entry.result
    if as_json:
        emit_json(r)
    else:
        console.print(f"target {iqn} deleted from {host.name}" + "".join(f"; {n}" for n in r["notes"]
                                                                         + r["firewall"]), highlight=False)
