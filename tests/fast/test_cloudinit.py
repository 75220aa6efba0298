"""cloud-init NoCloud seeds: the ISO's label and files read back (pycdlib and xorriso), the
user-data is valid YAML holding the key and hostname, every bad input is exit 2 before anything
is made, and a failed upload removes the seed volume it planned."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import libvirt
import pytest
import yaml

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.vm import cloudinit
from vpd.vm.create import create_vm
from vpd.vm.spec import CloudInitRequest, VmRequest

from .conftest import run_vpd

HOST = Host(name="t1", uri="test:///default")


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(path)], check=True)
    return path


def test_seed_iso_has_label_and_files(key: Path, tmp_path: Path):
    net = tmp_path / "net.yaml"
    net.write_text("version: 2\nethernets:\n  eth0:\n    dhcp4: true\n")
    seed = CloudInitRequest(user="alice", ssh_key_file=str(key) + ".pub", hostname="web1.lab.example",
                            password_hash="$6$saltsalt$" + "x" * 86, network_config_file=str(net)).seed("web1")
    label, files = cloudinit.read_iso(cloudinit.build_iso(seed))
    assert label == "cidata" and sorted(files) == ["meta-data", "network-config", "user-data"]
    data = yaml.safe_load(files["user-data"])
    assert files["user-data"].startswith("#cloud-config\n")
    assert (data["hostname"], data["fqdn"], data["ssh_pwauth"]) == ("web1", "web1.lab.example", True)
    user = data["users"][1]
    assert user["name"] == "alice" and user["ssh_authorized_keys"] == [(key.with_suffix(".pub")).read_text().strip()]
    meta = yaml.safe_load(files["meta-data"])
    assert meta["local-hostname"] == "web1" and meta["instance-id"].startswith("web1-")
    assert yaml.safe_load(files["network-config"])["version"] == 2
    again = yaml.safe_load(CloudInitRequest(hostname="web1").seed("web1").meta_data)
    assert again["instance-id"] != meta["instance-id"]  # a fresh instance-id: cloud-init runs again


@pytest.mark.skipif(shutil.which("xorriso") is None, reason="xorriso is not installed")
def test_xorriso_reads_the_label_and_names(tmp_path: Path):
    image = tmp_path / "seed.iso"
    image.write_bytes(cloudinit.build_iso(CloudInitRequest(hostname="h1").seed("h1")))
    out = subprocess.run(["xorriso", "-indev", str(image), "-pvd_info", "-ls", "/"], capture_output=True,
                         text=True, check=True)
    assert "Volume Id    : cidata" in out.stdout + out.stderr
    assert "'user-data'" in out.stdout and "'meta-data'" in out.stdout


@pytest.mark.parametrize("kw,match", [
    ({"user": "Bad User"}, "not a valid Linux user"),
    ({"hostname": "under_score"}, "not a valid host name"),
    ({"hostname": "-lead.example"}, "not a valid host name"),
    ({"password_hash": "secret123"}, "crypt"),
    ({"password_hash": "$6$saltsalt$abcdefgh"}, "needs user"),
    ({"ssh_key_file": "/nonexistent/id.pub"}, "cannot read"),
    ({}, "at least one"),
])
def test_bad_inputs_are_usage_errors(kw, match):
    with pytest.raises(UsageError, match=match):
        CloudInitRequest(**kw).seed("vm1")


def test_private_and_damaged_keys_are_refused(key: Path, tmp_path: Path):
    with pytest.raises(UsageError, match="private key"):
        CloudInitRequest(ssh_key_file=str(key)).seed("vm1")
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 AAAA!!notbase64 x\n")
    with pytest.raises(UsageError, match="base64"):
        CloudInitRequest(ssh_key_file=str(bad)).seed("vm1")
    bad.write_text("hello world\n")
    with pytest.raises(UsageError, match="not an SSH public key"):
        CloudInitRequest(ssh_key_file=str(bad)).seed("vm1")


def test_user_data_and_network_files_are_checked(tmp_path: Path):
    ud = tmp_path / "user-data.yaml"
    ud.write_text("#cloud-config\nhostname: x\n")
    assert CloudInitRequest(user_data_file=str(ud)).seed("x").user_data == ud.read_text()
    with pytest.raises(UsageError, match="cannot go with"):
        CloudInitRequest(user_data_file=str(ud), user="bob").seed("x")
    ud.write_text("hostname: x\n")
    with pytest.raises(UsageError, match="#cloud-config"):
        CloudInitRequest(user_data_file=str(ud)).seed("x")
    ud.write_text("#cloud-config\nusers: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        CloudInitRequest(user_data_file=str(ud)).seed("x")
    net = tmp_path / "net.yaml"
    net.write_text("ethernets: {}\n")
    with pytest.raises(UsageError, match="version: 1 or 2"):
        CloudInitRequest(hostname="x", network_config_file=str(net)).seed("x")
    net.write_text("network:\n  version: 1\n  config: []\n")
    assert CloudInitRequest(hostname="x", network_config_file=str(net)).seed("x").network_config


def test_failed_seed_upload_removes_what_was_made(conn):
    """The test driver cannot upload into volumes: the disk and the planned seed volume both go."""
    pool = conn.storagePoolLookupByName("default-pool")
    before = sorted(pool.listVolumes()), sorted(d.name() for d in conn.listAllDomains())
    request = VmRequest(accel="tcg", disks=[{"size": "8M", "pool": "default-pool"}],
                        cloud_init=CloudInitRequest(hostname="ci1"))
    with pytest.raises((libvirt.libvirtError, VpdError)):
        create_vm(conn, HOST, request.to_spec("ci1"))
    assert (sorted(pool.listVolumes()), sorted(d.name() for d in conn.listAllDomains())) == before


def test_seed_needs_a_disk():
    with pytest.raises(UsageError, match="needs a disk"):
        VmRequest(cloud_init=CloudInitRequest(hostname="x"), boot={"kernel": "/k"}).to_spec("x")


@pytest.mark.parametrize("extra", [
    ("--cloud-init", "user=Bad User"),
    ("--cloud-init", "hostname=bad_host"),
    ("--cloud-init", "ssh-key=/nonexistent.pub"),
    ("--cloud-init", "colour=blue"),
    ("--network-config", "/etc/hostname"),
])
def test_cli_refusals_make_nothing(test_inventory, extra):
    proc = run_vpd("vm", "create", "x", "--host", "t1", "--disk", "size=1M,pool=default-pool", *extra,
                   inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
