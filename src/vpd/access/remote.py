"""What a grant changes on hosts: a key file in SRC's /root/.ssh and one line of
DST's /root/.ssh/authorized_keys. Argument lists only; file contents travel on
stdin, never inside a command."""
from __future__ import annotations

import posixpath
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..connect.inventory import Host
from ..connect.ssh import runner_for
from ..core.errors import VpdError
from . import authorized_keys as ak

ROOT_SSH = "/root/.ssh"
AUTHORIZED_KEYS = f"{ROOT_SSH}/authorized_keys"
TIMEOUT = 30.0


def run_bytes(host: Host, argv: list[str], data: bytes | None = None) -> bytes:
    return runner_for(host, TIMEOUT).run_bytes(argv, data)


def openssh_version(host: Host) -> tuple[int, int] | None:
    """The server's OpenSSH version: `sshd -V` (9.x prints it; older ones print it
    with their usage), else the client's from `ssh -V`, which comes from the same
    package on every distribution vpd supports."""
    runner = runner_for(host, TIMEOUT)
    for argv in (["sshd", "-V"], ["ssh", "-V"]):
        try:
            result = runner.run(argv, check=False)
        except FileNotFoundError:  # the local runner, without that program
            continue
        version = ak.openssh_version(result.stdout + result.stderr)
        if version:
            return version
    return None


def _utc_offset(host: Host, when: datetime) -> timedelta:
    out = runner_for(host, TIMEOUT).run(["date", "-d", f"@{int(when.timestamp())}", "+%z"]).stdout
    return ak.parse_utc_offset(out)


def expiry_time(host: Host, expires: datetime) -> tuple[str | None, str]:
    """The expiry-time= value `host`'s sshd understands for `expires`, or None, and why."""
    version = openssh_version(host)
    style = ak.expiry_style(version)
    if style is None or version is None:
        shown = "not OpenSSH" if version is None else f"OpenSSH {version[0]}.{version[1]}"
        return None, f"{host.name}'s sshd ({shown}) has no expiry-time=; only vpd's TTL limits the grant"
    name = f"OpenSSH {version[0]}.{version[1]}"
    if style == "utc":
        return ak.format_expiry(expires), f"{name} enforces the expiry"
    # Before 9.1 a timestamp is read in the server's standard time. Standard time
    # is the smaller of the January and July offsets everywhere but in zones with
    # "negative DST" (Europe/Dublin), where the key then expires an hour early:
    # failing closed, never late.
    try:
        offsets = [_utc_offset(host, datetime(expires.year, month, 15, tzinfo=UTC)) for month in (1, 7)]
    except (VpdError, ValueError) as exc:
        return None, f"{name} reads expiry-time in local time and {host.name}'s UTC offset is unknown ({exc})"
    return ak.format_expiry(expires, min(offsets)), f"{name} enforces the expiry (standard time)"


def edit_authorized_keys(dst: Host, change: Callable[[bytes], bytes], create: bool) -> None:
    """Apply `change` to root's authorized_keys on `dst`: read it, write the result
    to a temporary file beside it with the same mode and owner, rename it over the
    original (readers see the old file or the new one, never half of one). A
    symlinked file is edited at its target, so the link survives."""
    runner = runner_for(dst, TIMEOUT)
    path = runner.run(["readlink", "-m", "--", AUTHORIZED_KEYS]).stdout.strip()
    stat = runner.run(["stat", "-c", "%a %u %g", "--", path], check=False)
    if stat.ok:
        mode, uid, gid = stat.stdout.split()
        owner = ["-o", uid, "-g", gid]
        old = run_bytes(dst, ["cat", "--", path])
    elif runner.run(["test", "-e", path], check=False).ok:
        raise VpdError(f"{dst.name}: cannot read {path}: {stat.stderr.strip()}")
    elif not create:
        return
    else:
        runner.run(["mkdir", "-p", "-m", "700", "--", posixpath.dirname(path)])
        mode, owner, old = "600", [], b""
    new = change(old)
    if new == old:
        return
    tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.vpd-{secrets.token_hex(4)}")
    run_bytes(dst, ["install", "-m", mode, *owner, "/dev/stdin", tmp], new)
    try:
        runner.run(["mv", "-f", "--", tmp, path])
    except BaseException:
        runner.run(["rm", "-f", "--", tmp], check=False)
        raise


def install_private_key(src: Host, path: str, key: str) -> None:
    runner = runner_for(src, TIMEOUT)
    runner.run(["mkdir", "-p", "-m", "700", "--", posixpath.dirname(path)])
    # install sets the mode itself and the directory is root's 700 .ssh: the key
    # is never readable by anyone else, not even briefly.
    runner.run(["install", "-m", "600", "/dev/stdin", path], input=key, secret=True)


def remove_private_key(src: Host, path: str) -> None:
    runner_for(src, TIMEOUT).run(["rm", "-f", "--", path])
