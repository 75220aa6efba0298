"""`vpd iscsi target ...`: export storage of a host over iSCSI (Práctica 6). Parse, call
vpd.storage.operations, render. No host commands, no domain rules here."""
from __future__ import annotations

import click

from ..core.errors import UsageError
from ..storage import operations as storage_ops
from ..storage import secrets
from .command import command, say
from .main import LocalPath, cli
from .render import table


@cli.group()
def iscsi() -> None:
    """iSCSI: targets (LIO or tgt) that initiators reach through iscsi/iscsi-direct pools."""


@iscsi.group()
def target() -> None:
    """iSCSI targets on the inventory's hosts."""


def _render_created(r: dict) -> None:
    if not r["changed"]:
        say(f"target {r['iqn']} already exports {r['path']} on {r['host']}: nothing to do")
        return
    say(f"target {r['iqn']} on {r['host']} ({r['backend']}): LUN {r['lun']} = {r['path']}; initiators "
        f"{', '.join(i['iqn'] for i in r['allowed'])}" + (f"; CHAP user {r['chap_user']}" if r["chap_user"] else ""))
    for line in r["firewall"]:
        say(f"  {line}")


@command(target, "create", render=_render_created)
@click.option("--host", "host_ref", required=True, help="The target host.")
@click.option("--iqn", required=True, help="The target's IQN, e.g. iqn.2024-01.org.example:san1.")
@click.option("--vol", "vol_ref", metavar="POOL/VOL", help="A raw volume of that host to export.")
@click.option("--file", "file_path", metavar="PATH", help="A file or block device of that host to export.")
@click.option("--lun", default=1, show_default=True, type=int, help="LUN number (tgt keeps 0 for its controller).")
@click.option("--allow", multiple=True, required=True, metavar="HOST|HOST=IQN|IQN",
              help="An initiator admitted (ACL) and its host admitted to 3260/tcp; repeatable.")
@click.option("--chap", "chap_user", help="CHAP user; the secret from --chap-secret-file or $VPD_CHAP_SECRET.")
@click.option("--chap-secret-file", type=LocalPath(dir_okay=False))
def target_create(session, host_ref, iqn, vol_ref, file_path, lun, allow, chap_user, chap_secret_file):
    """Export a volume or file as an iSCSI LUN to the allowed initiators only."""
    if chap_secret_file and not chap_user:
        raise UsageError("--chap-secret-file needs --chap USER")
    password = secrets.read_password(chap_secret_file) if chap_user else None
    return storage_ops.target_create(session, host_ref, iqn, allow, vol_ref=vol_ref, file_path=file_path, lun=lun,
                                     chap_user=chap_user, password=password)


def _render_list(r: dict) -> None:
    table("iSCSI targets", ["host", "backend", "iqn", "LUNs", "allowed initiators", "CHAP", "sessions"],
          [[h["host"], h["backend"], t["iqn"], ", ".join(f"{k}={v}" for k, v in t["luns"].items()),
            ", ".join(t["acl"]), ", ".join(t["chap_users"]) or None, t["sessions"]]
           for h in r["hosts"] for t in h["targets"]])
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")


@command(target, "list", render=_render_list, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def target_list(session, names):
    """Targets of every host: LUNs, ACL, CHAP users (never their secrets), sessions."""
    return storage_ops.target_list(session, names)


@command(target, "delete", render=lambda r: say(f"target {r['iqn']} deleted from {r['host']}"
                                                 + "".join(f"; {n}" for n in r["notes"] + r["firewall"])))
@click.option("--host", "host_ref", required=True)
@click.option("--iqn", required=True)
def target_delete(session, host_ref, iqn):
    """Remove a target (its LUN's data stays), its CHAP account and its firewall openings."""
    return storage_ops.target_delete(session, host_ref, iqn)
