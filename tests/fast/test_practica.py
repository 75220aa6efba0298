"""The course as data, and the pure parts of `vpd practica check 4`: leftover keys
found by blob where the seed's sed fails, the firewalld zone trap on recorded
firewall-cmd outputs, nftables decisions on a recorded ruleset."""
from __future__ import annotations

import base64
import json
import random
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from vpd.cli.main import cli
from vpd.connect.inventory import Host
from vpd.core.checks import Check
from vpd.hostprep import fwzones, nfteval
from vpd.practica import catalog, check4, keys
from vpd.practica.model import LANGS

from .conftest import run_vpd

DATA = Path(__file__).parent / "data"
ADMIN = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0cnBkX0J5dGVzX2Zvcl90ZXN0aW5nX29ubHlfX19f admin@machine"


# --- the data model -----------------------------------------------------------------

def test_the_course_has_practicas_1_to_7_and_4_is_fully_checkable():
    assert sorted(catalog.PRACTICAS) == [1, 2, 3, 4, 5, 6, 7]
    p4 = catalog.get(4)
    assert [g.id for g in p4.goals] == ["fqdn", "firewall", "shared-storage", "migrated", "key-revoked",
                                        "disk-readable"]
    assert all(g.checked for g in p4.goals)


@pytest.mark.parametrize("number", sorted(catalog.PRACTICAS))
def test_every_practica_has_goals_and_steps_in_spanish_and_english(number):
    p = catalog.get(number)
    assert p.goals and len({g.id for g in p.goals}) == len(p.goals)
    for lang in LANGS:
        d = p.to_dict(lang)
        assert d["title"] and d["summary"]
        for g in d["goals"]:
            assert g["title"] and g["proof"] and g["steps"], (number, g["id"])
            for s in g["steps"]:
                assert s["title"] and (s["hand"] or s["vpd"]), (number, g["id"], s)
    assert p.title("es") != p.title("en") or p.number == 0
    assert any(s.vpd for g in p.goals for s in g.steps)


def _resolves(words: list[str]) -> bool:
    """`vpd a b ...`: its leading words name a real command."""
    group: click.Command = cli
    ctx = click.Context(cli)
    depth = 0
    for word in words:
        if not isinstance(group, click.Group):
            break
        sub = group.get_command(ctx, word)
        if sub is None:
            break
        group, depth = sub, depth + 1
    return depth > 0 and not isinstance(group, click.Group)


def test_every_vpd_equivalent_is_a_real_command():
    bad = [cmd for p in catalog.PRACTICAS.values() for g in p.goals for s in g.steps for cmd in s.vpd
           if not cmd.startswith("vpd ") or not _resolves(cmd.split()[1:])]
    assert not bad, bad


def test_list_and_show_json():
    listed = json.loads(run_vpd("practica", "list", "--json", check_rc=0).stdout)
    assert [p["number"] for p in listed["practicas"]] == [1, 2, 3, 4, 5, 6, 7] and listed["lang"] == "es"
    shown = json.loads(run_vpd("practica", "show", "4", "--lang", "en", "--json", check_rc=0).stdout)
    assert shown["title"] == "Migrating virtual machines" and shown["checkable"]
    hand = [c for g in shown["goals"] for s in g["steps"] for c in s["hand"]]
    assert "sudo firewall-cmd --add-port=49152-49216/tcp --permanent" in hand


@pytest.mark.parametrize("args", [("show", "9"), ("check", "1"), ("check", "6", "--hosts", "t1"),
                                  ("check", "3", "--set", "pool=x"), ("show", "4", "--lang", "fr"),
                                  ("check", "4", "--hosts", "t1")])
def test_bad_input_is_exit_2(args, test_inventory):
    run_vpd("practica", *args, inventory=test_inventory, check_rc=2)


# --- leftover keys ------------------------------------------------------------------

def _rsa4096(rng: random.Random) -> str:
    """An RSA-4096 public key blob as ssh-keygen writes it: type, e, n (513-byte mpint)."""
    def mpint(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b
    n = b"\x00" + bytes([rng.randrange(128, 256)]) + rng.randbytes(511)
    raw = mpint(b"ssh-rsa") + mpint(b"\x01\x00\x01") + mpint(n)
    return base64.b64encode(raw).decode()


def _present(data: bytes, blob: str) -> bool:
    """Independently of vpd's parser: is there a line whose second field is the blob?"""
    return any(len(f := line.split()) >= 2 and f[1] == blob for line in data.decode("latin-1").splitlines())


@pytest.mark.skipif(not shutil.which("sed") or not shutil.which("grep"), reason="needs sed and grep")
def test_200_rsa_keys_the_seeds_sed_leaves_and_the_check_catches(tmp_path):
    rng = random.Random(17)
    keys_file = tmp_path / "authorized_keys"
    with_slash = sed_left = caught = 0
    for i in range(200):
        blob = _rsa4096(rng)
        line = f"ssh-rsa {blob} root@hosta.vpd.lab"
        before = f"{ADMIN}\n{line}\n# kept\n".encode()
        keys_file.write_bytes(before)
        # The seed's revocation, as the student runs it on the destination.
        subprocess.run(["sed", "-i", f"/{blob}/d", str(keys_file)], capture_output=True)
        after = keys_file.read_bytes()
        found = keys.leftovers(after, [("ssh-rsa", blob, "root@hosta.vpd.lab")], ["hosta"])
        assert bool(found) == _present(after, blob), (i, blob)
        if "/" in blob:
            with_slash += 1
            assert after != before.replace(line.encode() + b"\n", b""), "sed cannot remove a key with '/' cleanly"
            assert "cannot remove" in keys.seed_sed_outcome(blob)
        else:
            assert not found and after == before.replace(line.encode() + b"\n", b"")
        if found:
            sed_left += 1
            [x] = found
            assert x.why == keys.SOURCE_KEY and x.line_no >= 2  # sed may have inserted a line
            # The fix given works: run it (pointed at the test file) and only that line goes
            # (whatever else sed wrote stays: the check reports the key, not sed's debris).
            fix = keys.removal_fix("hostb", x).removeprefix("on hostb: ")
            subprocess.run(["bash", "-c", fix.replace(keys.AUTHORIZED_KEYS, shlex.quote(str(keys_file)))],
                           check=True)
            assert keys_file.read_bytes() == after.replace(line.encode() + b"\n", b"")
            assert not keys.leftovers(keys_file.read_bytes(), [("ssh-rsa", blob, "")], ["hosta"])
            caught += 1
    assert with_slash > 150 and sed_left >= with_slash * 0.8 and caught == sed_left


def test_leftovers_by_comment_and_by_grant_and_not_the_admin_key():
    other = _rsa4096(random.Random(1))
    grant = "AAAAC3NzaC1lZDI1NTE5AAAAIGdyYW50X2tleV9ieXRlc19mb3JfdGVzdGluZ19vbmx5"
    data = (f"{ADMIN}\n"
            f"ssh-rsa {other} root@hosta\r\n"
            f'from="198.18.4.11",no-pty ssh-ed25519 {grant} vpd-grant:0123456789abcdef\n').encode()
    found = keys.leftovers(data, [], ["hosta.vpd.lab", "hosta"])
    assert [(x.line_no, x.why) for x in found] == [(2, keys.SOURCE_COMMENT), (3, keys.VPD_GRANT)]
    assert keys.removal_fix("hostb", found[1]).startswith("vpd access revoke 0123456789abcdef")
    assert [x.line_no for x in keys.leftovers(data, [], ["hosta"], {"0123456789abcdef"})] == [2]
    assert keys.leftovers(data, [], ["hostc"], {"0123456789abcdef"}) == []


# --- firewalld zones ----------------------------------------------------------------

# The seed's own `firewall-cmd --list-all` after its commands (Práctica 4, "Configuración del Cortafuegos").
SEED_ZONE = """FedoraServer (default, active)
  target: default
  ingress-priority: 0
  egress-priority: 0
  icmp-block-inversion: no
  interfaces: enp6s0
  sources:
  services: cockpit dhcpv6-client libvirt ssh
  ports: 49152-49216/tcp
  protocols:
  forward: yes
  masquerade: no
  forward-ports:
  source-ports:
  icmp-blocks:
  rich rules:
"""

# The zone trap: public is the default zone, where the commands without --zone= went;
# the interface that reaches the peer is bound to FedoraServer.
TRAP_ZONES = """FedoraServer (active)
  target: default
  icmp-block-inversion: no
  interfaces: enp6s0
  sources:
  services: cockpit dhcpv6-client ssh
  ports:
  protocols:
  rich rules:

libvirt (active)
  target: ACCEPT
  icmp-block-inversion: no
  interfaces: virbr0
  sources:
  services: dhcp dhcpv6 dns ssh tftp
  ports:
  rich rules:
	rule priority="32767" reject

public (default)
  target: default
  icmp-block-inversion: no
  interfaces:
  sources:
  services: dhcpv6-client libvirt ssh
  ports: 49152-49216/tcp
  protocols:
  rich rules:
"""

# Done right: rich rules for the peer only, in the interface's zone.
PEER_ONLY = """FedoraServer (default, active)
  target: default
  interfaces: enp6s0
  sources:
  services: cockpit dhcpv6-client ssh
  ports:
  rich rules:
	rule family="ipv4" source address="10.140.92.125" port port="22" protocol="tcp" accept
	rule family="ipv4" source address="10.140.92.125" port port="16509" protocol="tcp" accept
	rule family="ipv4" source address="10.140.92.125" port port="49152-49216" protocol="tcp" accept
"""
PEER = "10.140.92.125"


def test_the_seeds_zone_admits_the_peer_but_also_the_world():
    zones = fwzones.parse_zones(SEED_ZONE)
    for port in (22, 16509, 49152, 49216):
        v = fwzones.verdict(zones, PEER, "enp6s0", port)
        assert v.zone == "FedoraServer" and v.open_to_peer and v.open_to_world
    assert not fwzones.verdict(zones, PEER, "enp6s0", 49217).open_to_peer


def test_the_zone_trap_is_caught_and_names_the_zone_that_holds_the_rules():
    zones = fwzones.parse_zones(TRAP_ZONES)
    assert [(z.name, z.default, z.active) for z in zones] == [
        ("FedoraServer", False, True), ("libvirt", False, True), ("public", True, False)]
    v = fwzones.verdict(zones, PEER, "enp6s0", 49152)
    assert (v.zone, v.open_to_peer, v.elsewhere) == ("FedoraServer", False, ["public"])
    assert "interface enp6s0 is in zone FedoraServer" == v.why_zone
    # An interface bound to no zone gets the default zone: there the rules do apply.
    assert fwzones.verdict(zones, PEER, "eth9", 49152).open_to_peer


def test_rich_rules_admit_the_peer_and_nobody_else():
    zones = fwzones.parse_zones(PEER_ONLY)
    for port in (22, 16509, 49152, 49216):
        v = fwzones.verdict(zones, PEER, "enp6s0", port)
        assert v.open_to_peer and v.peer_by.startswith("rich rule")
    assert not fwzones.verdict(zones, PEER, "enp6s0", 49152).open_to_world
    assert not fwzones.verdict(zones, "10.140.92.99", "enp6s0", 49152).open_to_peer
    fix = fwzones.rich_rule_fix("FedoraServer", PEER, [(49152, 49216)])
    assert fix == ["firewall-cmd --permanent --zone=FedoraServer --add-rich-rule='rule family=\"ipv4\" source "
                   "address=\"10.140.92.125\" port port=\"49152-49216\" protocol=\"tcp\" accept'",
                   "firewall-cmd --reload"]


def test_a_source_bound_zone_wins_over_the_interface():
    zones = fwzones.parse_zones(TRAP_ZONES + "\ntrusted\n  target: ACCEPT\n  interfaces:\n  sources: 10.140.92.0/24\n")
    v = fwzones.verdict(zones, PEER, "enp6s0", 49152)
    assert v.zone == "trusted" and v.open_to_peer and not v.open_to_world


class _Result:
    def __init__(self, stdout: str = "", ok: bool = True):
        self.stdout, self.stderr, self.ok, self.returncode = stdout, "", ok, 0 if ok else 1


def test_firewalld_grading_reports_the_trap_a_missing_reload_and_the_world(monkeypatch):
    """check4's firewalld path on recorded answers: runtime has the trap, permanent was fixed but not reloaded."""
    answers = {("firewall-cmd", "--list-all-zones"): TRAP_ZONES,
               ("firewall-cmd", "--permanent", "--list-all-zones"): PEER_ONLY}
    monkeypatch.setattr(check4, "_run", lambda host, argv, check=False: _Result(answers[tuple(argv)]))
    host, peer = Host(name="hostb", uri="qemu:///system"), Host(name="hosta", uri="qemu:///system", address=PEER)
    checks: list[Check] = check4._firewalld_checks(host, peer, PEER, "enp6s0")
    admits, permanent, world = checks
    assert not admits.ok and "ZONE TRAP" in admits.detail and "public" in admits.detail
    assert "--zone=FedoraServer" in (admits.fix or "") and "vpd host prepare hosta hostb" in (admits.fix or "")
    assert not permanent.ok and permanent.fix == "firewall-cmd --reload"
    assert world.ok  # in the zone that applies, nothing is open to the world
    answers[("firewall-cmd", "--list-all-zones")] = SEED_ZONE
    answers[("firewall-cmd", "--permanent", "--list-all-zones")] = SEED_ZONE
    admits, permanent, world = check4._firewalld_checks(host, peer, PEER, "enp6s0")
    assert admits.ok and permanent.ok and not world.ok and "49152/tcp by port 49152/tcp" in world.detail


# --- nftables -----------------------------------------------------------------------

def test_nft_decisions_on_the_labs_recorded_ruleset():
    """The lab's host table with one `vpd host prepare` rule (hosta) and a 10/8 rule for the range."""
    rs = nfteval.Ruleset((DATA / "practica_nft_ruleset.json").read_text())
    decide = lambda addr, port, dev="eth0": rs.decide(nfteval.Packet(addr, dev, port))  # noqa: E731
    assert decide("198.18.4.11", 49152).accepted and "vpd-prepare hosta" in decide("198.18.4.11", 49152).by
    assert not decide("198.18.4.12", 49152).accepted
    assert decide("198.18.4.12", 16509).accepted  # the lab opens libvirt to any source
    assert decide("10.9.8.7", 49216).accepted and not decide("10.9.8.7", 49217).accepted
    assert decide("198.18.4.12", 49152, "lo").accepted  # not eth0: accepted first
    assert decide("2001:db8::1", 49152).by.startswith("policy drop")


def test_a_class_gets_one_row_per_pair(capsys):
    from vpd.cli.commands_practica import _render_check

    def pair(src, dst, ok):
        return {"src": src, "dst": dst, "vm": f"mvp4_{src}", "ok": ok, "goals": [
            {"id": "fqdn", "title": "FQDN", "ok": True, "checks": [Check("fqdn", True, "ok").to_dict()]},
            {"id": "key-revoked", "title": "key", "ok": ok,
             "checks": [Check("no key", ok, "line 2", None if ok else "grep -vF ...").to_dict()]}]}
    _render_check({"practica": 4, "title": "Migración", "lang": "es", "ok": False,
                   "pairs": [pair("pc01a", "pc01b", True), pair("pc02a", "pc02b", False)]})
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│ pc0")]
    assert len(rows) == 2 and "FAIL" not in rows[0] and "FAIL" in rows[1]
