from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vpd.connect.inventory import Host, load, resolve
from vpd.core.errors import EXIT_USAGE, NotFound, UsageError

from .conftest import run_vpd


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "inv.toml"
    p.write_text(text)
    return p


def test_loads_hosts(tmp_path):
    inv = load(write(tmp_path, '[[hosts]]\nname="a"\nuri="qemu+ssh://root@a.example/system"\naddress="192.0.2.1"\n'
                               'ssh_identity="~/.ssh/id"\n'))
    host = inv.get("a")
    assert host.hostname == "a.example"
    assert "keyfile=" in host.connect_uri() and "~" not in host.connect_uri()


@pytest.mark.parametrize("text,fragment", [
    ("[[hosts]\nname='a'", "not valid TOML"),
    ("[[hosts]]\nuri='qemu:///system'\n", "name"),
    ("[[hosts]]\nname='a b'\nuri='qemu:///system'\n", "invalid host name"),
    ("[[hosts]]\nname='a'\nuri='http://x/'\n", "scheme"),
    ("[[hosts]]\nname='a'\nuri='qemu+ssh://x/system;rm -rf /'\n", "characters"),
    ("[[hosts]]\nname='a'\nuri='qemu:///system'\naddress='not-an-ip'\n", "address"),
    ("[[hosts]]\nname='a'\nuri='qemu:///system'\n[[hosts]]\nname='a'\nuri='qemu:///system'\n", "twice"),
    ("[[hosts]]\nname='a'\nuri='qemu:///system'\ncolour='red'\n", "colour"),
    ("hosts = []\n", "no hosts"),
])
def test_malformed_inventories_are_usage_errors(tmp_path, text, fragment):
    with pytest.raises(UsageError) as err:
        load(write(tmp_path, text))
    assert err.value.exit_code == EXIT_USAGE
    assert fragment in str(err.value)


def test_unknown_host_names_the_known_ones(tmp_path):
    inv = load(write(tmp_path, "[[hosts]]\nname='a'\nuri='qemu:///system'\n"))
    with pytest.raises(NotFound) as err:
        inv.get("b")
    assert "a" in err.value.hint


def test_without_any_inventory_the_local_daemon_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    inv = resolve()
    assert [h.uri for h in inv.hosts] == ["qemu:///system"]


def test_inventory_round_trips_through_toml(tmp_path):
    from vpd.connect.inventory import Inventory

    inv = Inventory(hosts=[Host(name="a", uri="qemu+tcp://198.18.0.11/system", address="198.18.0.11")])
    again = load(write(tmp_path, inv.to_toml()))
    assert again.hosts == inv.hosts


def test_what_a_lab_states_round_trips_through_toml(tmp_path):
    from vpd.connect.inventory import Inventory

    inv = Inventory(hosts=[Host(name="a", uri="test:///default", link_mbit=100, lab=True),
                           Host(name="b", uri="test:///default")])
    text = inv.to_toml()
    assert "lab = true" in text and "link_mbit = 100" in text
    again = load(write(tmp_path, text))
    assert again.hosts == inv.hosts
    assert (again.get("b").link_mbit, again.get("b").lab) == (None, False)


@pytest.mark.parametrize("uri", [
    "qemu+ssh://h/system?command=/tmp/prog",
    "qemu+ssh://h/system?netcat=/tmp/nc",
    "qemu+ssh://h/system?proxy=native",
    "qemu+ssh://h/system?name=qemu:///session",
    "qemu+ssh://h/system?keyfile=/k&keyfile=/other",
    "qemu+ssh://h/system?keyfile=relative",
    "qemu+ssh://h/system?no_verify=yes",
    "qemu+ssh://h/system?sshauth=agent,rsh",
    "qemu+tcp://h/system?keyfile=/k",
    "qemu:///system?no_verify=1",
    "test:///default?socket=/s",
    "test:///def\x00ault",
    "test:///def\x07ault",
    "qemu:///system\n",
    "qemu+ssh://h:port/system",
    "qemu+ssh://h/system#frag",
])
def test_hostile_uris_are_refused(uri):
    with pytest.raises(ValidationError):
        Host(name="a", uri=uri)


@pytest.mark.parametrize("uri", [
    "qemu+ssh://root@h/system?keyfile=/root/.ssh/id_ed25519&known_hosts=/root/.ssh/known_hosts",
    "qemu+ssh://h/system?no_verify=1",
    "qemu+ssh://h/system?sshauth=agent,privkey&no_tty=1",
    "qemu+unix:///system?socket=/run/libvirt/virtqemud-sock",
    "qemu+tls://h/system?pkipath=/etc/pki/vpd",
    "qemu+libssh2://h/system?known_hosts_verify=auto",
    "qemu:///system",
    "test:///default",
])
def test_supported_uri_parameters_pass(uri):
    assert Host(name="a", uri=uri).uri == uri


@pytest.mark.parametrize("uri", ["qemu+ssh://h/system?command=/bin/id", "test:///def\\u0000ault"])
def test_inventory_with_a_hostile_uri_exits_2(tmp_path, uri):
    path = tmp_path / "inventory.toml"
    path.write_text(f'[[hosts]]\nname = "a"\nuri = "{uri}"\n')
    proc = run_vpd("host", "list", inventory=path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "uri" in proc.stderr


def test_a_uri_libvirt_cannot_take_is_an_explained_failure():
    from vpd.connect.libvirt_conn import open_connection
    from vpd.core.errors import HostUnreachable

    host = Host.model_construct(name="a", uri="test:///def\x00ault", ssh_identity=None)  # past the validator
    with pytest.raises(HostUnreachable, match="cannot open libvirt URI"):
        open_connection(host)
