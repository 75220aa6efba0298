"""Containers without incusd: input checks, request building, the lab's boot script."""
from __future__ import annotations

import ipaddress
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vpd.connect.inventory import Host
from vpd.core.errors import NotFound, UsageError
from vpd.ct import checks, engine, images
from vpd.ct.client import (
    Endpoint,
    IncusError,
    create_body,
    endpoint_for,
    error_of,
    exec_body,
    file_headers,
    operation_id,
    path,
    state_body,
)


@pytest.mark.parametrize("name", ["web1", "cdps-vm-lxd", "a", "A" + "b" * 62])
def test_container_names_ok(name):
    assert checks.check_ct_name(name) == name


@pytest.mark.parametrize("name", ["", "1web", "web_1", "web.1", "web-", "-web", "../x", "a/b", "w\n", "a" * 64,
                                  "sp ace"])
def test_container_names_rejected(name):
    with pytest.raises(UsageError):
        checks.check_ct_name(name)


@pytest.mark.parametrize("text,expected", [("/root/datos", "/root/datos"), ("//etc/./hosts", "/etc/hosts"),
                                           ("/a/b/", "/a/b")])
def test_container_paths_normalised(text, expected):
    assert checks.check_ct_path(text) == expected


@pytest.mark.parametrize("text", ["root/datos", "/../etc/shadow", "/a/../../b", "/a/..", "/a\x00b", "/", "/a\nb", ""])
def test_container_paths_cannot_escape(text):
    with pytest.raises(UsageError):
        checks.check_ct_path(text)


def test_split_name_and_path():
    assert checks.split_ct_path("cdps-vm-lxd/root/.bashrc") == ("cdps-vm-lxd", "/root/.bashrc")
    for bad in ("web1", "/root/x", "web1/", "web1/../x", "bad_name/x"):
        with pytest.raises(UsageError):
            checks.split_ct_path(bad)


@pytest.mark.parametrize("key,value,expected", [
    ("limits.memory", "256MB", "256MB"), ("limits.memory", "128M", "128MiB"), ("limits.memory", "1GiB", "1GiB"),
    ("limits.memory", "50%", "50%"), ("limits.cpu", "2", "2"), ("limits.cpu", "0-1", "0-1"),
    ("limits.cpu.allowance", "25ms/100ms", "25ms/100ms"), ("limits.processes", "100", "100"),
    ("limits.memory.enforce", "Soft", "soft"), ("boot.autostart", "true", "true")])
def test_config_values_ok(key, value, expected):
    assert checks.check_config(key, value) == (key, expected)


@pytest.mark.parametrize("key,value", [
    ("limits.memory", "lots"), ("limits.memory", "1MiB"), ("limits.memory", "0"), ("limits.memory", "150%"),
    ("limits.memory", "-5MiB"), ("limits.cpu", "0"), ("limits.cpu", "two"), ("limits.cpu", "1;reboot"),
    ("limits.processes", "0"), ("limits.cpu.priority", "11"), ("raw.lxc", "lxc.apparmor.profile=unconfined"),
    ("security.privileged", "true"), ("limits.memory", " ")])
def test_config_values_rejected(key, value):
    with pytest.raises(UsageError):
        checks.check_config(key, value)


def test_limit_option():
    assert checks.parse_limits("cpu=1,memory=128MiB") == {"limits.cpu": "1", "limits.memory": "128MiB"}
    assert checks.parse_limits(None) == {}
    for bad in ("cpu", "disk=1G", "memory=lots", "cpu=1,cpu=2", "memory=64MiB,"):
        with pytest.raises(UsageError):
            checks.parse_limits(bad)


def test_image_refs():
    assert checks.check_image_ref("ubuntu2004") == "ubuntu2004"
    assert checks.check_image_ref("c9c507373919") == "c9c507373919"
    for bad in ("../x", "a b", "", "x" * 65):
        with pytest.raises(UsageError):
            checks.check_image_ref(bad)


def test_paths_quote_every_segment():
    assert path() == "/1.0"
    assert path("instances", "web1", "state") == "/1.0/instances/web1/state"
    assert path("instances", "a/b") == "/1.0/instances/a%2Fb"
    assert (path("instances", "web1", "files", path="/root/my file")
            == "/1.0/instances/web1/files?path=%2Froot%2Fmy%20file")
    assert path("instances", recursion=2, filter=None) == "/1.0/instances?recursion=2"
    assert path("x", flag=True) == "/1.0/x?flag=true"


def test_request_bodies():
    assert exec_body(["echo", "hi"]) == {"command": ["echo", "hi"], "environment": {}, "interactive": False,
                                         "wait-for-websocket": False, "record-output": True}
    assert state_body("freeze") == {"action": "freeze", "force": False}
    assert state_body("stop", force=True, timeout=5) == {"action": "stop", "force": True, "timeout": 5}
    with pytest.raises(ValueError):
        state_body("explode")
    body = create_body("web1", "ab" * 32, {"limits.memory": "64MiB"}, ["default"])
    assert body["source"] == {"type": "image", "fingerprint": "ab" * 32} and body["type"] == "container"
    assert file_headers(0o100755)["X-Incus-mode"] == "0755"


def test_operation_ids_and_errors():
    assert operation_id("/1.0/operations/29136b39-9414") == "29136b39-9414"
    for bad in ("/1.0/instances/x", "/1.0/operations/", "/1.0/operations/a/b"):
        with pytest.raises(IncusError):
            operation_id(bad)
    assert isinstance(error_of(404, {"type": "error", "error": "Instance not found", "error_code": 404}), NotFound)
    err = error_of(500, {"type": "error", "error": "boom", "error_code": 500})
    assert isinstance(err, IncusError) and err.message == "incusd: boom"
    assert error_of(502, None).message == "incusd: HTTP 502"


def test_endpoints():
    assert Endpoint.parse("unix:/var/lib/incus/unix.socket") == Endpoint("unix", "/var/lib/incus/unix.socket")
    assert Endpoint.parse("unix:///run/x.sock") == Endpoint("unix", "/run/x.sock")
    assert Endpoint.parse("https://198.18.0.11") == Endpoint("https", "198.18.0.11:8443")
    assert str(Endpoint.parse("https://h.example:9443")) == "https://h.example:9443"
    for bad in ("unix:rel/sock", "http://h", "https://h/path", "ftp://x"):
        with pytest.raises(UsageError):
            Endpoint.parse(bad)
    local = Host(name="here", uri="qemu:///system")
    remote = Host(name="b", uri="qemu+ssh://root@hostb.example/system", address="192.0.2.12")
    lab = Host(name="c", uri="qemu+tcp://198.18.0.13/system",
               incus="unix:/var/lib/vpd/lab/hosts/hostc/incus/unix.socket")
    assert endpoint_for(local) == Endpoint("unix", "/var/lib/incus/unix.socket")
    assert endpoint_for(remote) == Endpoint("https", "192.0.2.12:8443")
    assert endpoint_for(lab).address.endswith("hostc/incus/unix.socket")
    with pytest.raises(ValueError):
        Host(name="d", uri="qemu:///system", incus="unix:/x; reboot")


def test_preseed_has_no_nat_and_subnets_do_not_overlap():
    p = engine.Preseed(ipaddress.ip_network("198.18.130.0/24"))
    assert p.network_config() == {"ipv4.address": "198.18.130.1/24", "ipv4.nat": "false", "ipv4.dhcp": "true",
                                  "ipv6.address": "none"}
    assert p.profile_devices()["eth0"]["network"] == engine.BRIDGE
    used = {"eth0": ipaddress.ip_network("198.19.200.0/24"), "br": ipaddress.ip_network("198.19.201.0/24")}
    assert engine.pick_subnet(used) == ipaddress.ip_network("198.19.202.0/24")
    with pytest.raises(UsageError):
        engine.check_overlap(ipaddress.ip_network("198.19.0.0/16"), used, engine.BRIDGE)
    engine.check_overlap(ipaddress.ip_network("198.19.201.0/24"), {"vpdbr0": used["br"]}, "vpdbr0")
    for bad in ("10.0.0.0/8", "198.18.1.1/24", "fd00::/64", "nonsense"):
        with pytest.raises(UsageError):
            engine.parse_subnet(bad)


def test_busybox_image_is_a_split_image(tmp_path):
    files = images.build_busybox(tmp_path / "img")
    with tarfile.open(files.metadata) as meta:
        text = meta.extractfile("metadata.yaml").read().decode()
    assert "architecture: x86_64" in text and "creation_date:" in text
    with tarfile.open(files.rootfs) as root:
        members = {m.name: m for m in root.getmembers()}
    assert members["bin/busybox"].isfile() and members["sbin/init"].issym()
    assert "hostname" not in root_text(files.rootfs, "etc/inittab")
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert images.order_pair(str(files.rootfs), str(files.metadata)) == (files.metadata, files.rootfs)
    assert images.order_pair(str(files.metadata), str(files.rootfs)) == (files.metadata, files.rootfs)
    with pytest.raises(UsageError):
        images.order_pair(str(files.rootfs), str(files.rootfs))
    (tmp_path / "junk").write_text("not a tarball")
    with pytest.raises(UsageError):
        images.order_pair(str(tmp_path / "junk"), str(files.metadata))
    assert images.build_busybox(tmp_path / "img") == files  # cached


def root_text(rootfs: Path, name: str) -> str:
    with tarfile.open(rootfs) as tar:
        return tar.extractfile(name).read().decode()


def test_lab_boot_script_is_valid_shell(tmp_path):
    from vpd.lab import incus

    script = incus.boot_script("vpdlab1-hosta", tmp_path / "hosts" / "hosta" / "incus")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "vpdlab1-hosta" in script and "unshare -C -m" in script and "admin init" not in script


def test_lab_bridges_are_distinct_and_inside_the_lab_range(monkeypatch):
    from vpd.lab import incus, layout

    seen = set()
    for net in range(8):
        monkeypatch.setenv("VPD_LAB_NET", str(net))
        for i in range(layout.MAX_HOSTS):
            sub = incus.bridge_subnet(layout.LabHost(i, Path("/x")))
            assert sub.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
            assert not sub.overlaps(layout.subnet())
            seen.add(sub)
    assert len(seen) == 8 * layout.MAX_HOSTS


def _vpd(*args):
    return subprocess.run([sys.executable, "-m", "vpd", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [
    ["ct", "launch", "bb", "bad_name", "--host", "x"],
    ["ct", "launch", "bb", "web1", "--limit", "memory=lots"],
    ["ct", "config", "set", "web1", "limits.memory", "lots"],
    ["ct", "config", "set", "web1", "raw.lxc", "x"],
    ["ct", "file", "push", "/etc/hostname", "web1/../../etc/x"],
    ["ct", "file", "pull", "web1/etc/../shadow", "/tmp/x"],
    ["ct", "stop", "web1", "--timeout", "0"],
])
def test_cli_bad_input_exits_2(args):
    proc = _vpd(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "error:" in proc.stderr


@pytest.mark.parametrize("snap", ["s1", "before-upgrade", "snap.2026_12"])
def test_snapshot_names_ok(snap):
    assert checks.check_snapshot_name(snap) == snap


@pytest.mark.parametrize("snap", ["", "a/b", "..", "-x", "a b", "x" * 64, "s\n"])
def test_snapshot_names_rejected(snap):
    with pytest.raises(UsageError):
        checks.check_snapshot_name(snap)


def test_profiles_are_checked_whole():
    ok = checks.check_profile({"description": "small", "config": {"limits.memory": "64M"},
                               "devices": {"eth0": {"type": "nic", "name": "eth0", "network": "vpdbr0"},
                                           "root": {"type": "disk", "path": "/", "pool": "default"}},
                               "used_by": ["/1.0/instances/c1"]})
    assert ok["config"] == {"limits.memory": "64MiB"} and "used_by" not in ok
    assert checks.check_profile({}) == {"description": "", "config": {}, "devices": {}}
    for bad in (
        [], {"config": {"raw.lxc": "x"}}, {"config": {"limits.memory": "lots"}}, {"surprise": 1},
        {"devices": {"home": {"type": "disk", "path": "/home", "source": "/home"}}},
        {"devices": {"root": {"type": "disk", "path": "/", "pool": "default", "source": "/"}}},
        {"devices": {"gpu": {"type": "gpu"}}}, {"devices": {"eth0": {"type": "nic", "network": "../x"}}},
        {"devices": {"eth0": {"type": "nic", "network": "br", "hwaddr": "zz"}}}, {"description": "two\nlines"},
        {"devices": ["eth0"]},
    ):
        with pytest.raises(UsageError):
            checks.check_profile(bad)


def test_migration_bodies():
    from vpd.ct.client import migration_source_body, migration_target_body

    assert migration_source_body() == {"migration": True, "live": False, "instance_only": False}
    inst = {"architecture": "x86_64", "profiles": ["default", "small"], "devices": {},
            "config": {"limits.memory": "64MiB", "volatile.base_image": "ab",
                       "volatile.eth0.hwaddr": "10:66:6a:00:00:01", "volatile.idmap.current": "[]",
                       "volatile.last_state.power": "RUNNING"}}
    moved = migration_target_body("c1", inst, "https://198.18.6.11:8443/1.0/operations/x", "PEM", {"fs": "s"}, True)
    assert moved["config"] == {"limits.memory": "64MiB", "volatile.base_image": "ab",
                               "volatile.eth0.hwaddr": "10:66:6a:00:00:01"}
    assert moved["source"]["mode"] == "pull" and moved["source"]["secrets"] == {"fs": "s"}
    assert moved["profiles"] == ["default", "small"]
    copied = migration_target_body("c2", inst, "u", "PEM", {}, False)
    assert "volatile.eth0.hwaddr" not in copied["config"] and copied["name"] == "c2"


def test_interactive_bodies():
    from vpd.ct.client import interactive_exec_body, resize_message

    body = interactive_exec_body(["sh"], {"TERM": "xterm"}, 100, 30)
    assert body["interactive"] and body["wait-for-websocket"] and not body["record-output"]
    assert (body["width"], body["height"]) == (100, 30)
    assert resize_message(80, 24) == '{"command": "window-resize", "args": {"width": "80", "height": "24"}}'


def test_detach_keys_are_found_across_reads():
    from vpd.ct.terminal import DETACH, DetachScanner

    s = DetachScanner(DETACH)
    assert s.feed(b"ls\r") == b"ls\r" and not s.detached
    assert s.feed(b"abc\x01") == b"abc" and not s.detached  # ctrl-a held back until we know
    assert s.feed(b"x") == b"\x01x" and not s.detached     # ctrl-a then x: both go on
    assert s.feed(b"\x01") == b"" and s.feed(b"q") == b"" and s.detached
    s = DetachScanner(None)
    assert s.feed(b"\x01q") == b"\x01q" and not s.detached


def test_editor_runs_without_a_shell_and_only_changes_count(tmp_path):
    from vpd.core.errors import VpdError
    from vpd.ct import editing

    assert editing.editor_argv({"EDITOR": "sed -i 's/a b/c/'"}) == ["sed", "-i", "s/a b/c/"]
    assert editing.editor_argv({"VISUAL": "nano", "EDITOR": "vi"}) == ["nano"]
    assert editing.editor_argv({}) == ["vi"]
    with pytest.raises(UsageError):
        editing.editor_argv({"EDITOR": "'unclosed"})
    assert editing.edit_bytes(b"a b\n", ["sed", "-i", "s/a b/c/"]) == b"c\n"
    assert editing.edit_bytes(b"same\n", ["true"]) is None
    with pytest.raises(VpdError):  # quit with an error (vi's :cq): nothing applied
        editing.edit_bytes(b"x", ["false"])
    with pytest.raises(UsageError):
        editing.edit_bytes(b"x", [str(tmp_path / "no-such-editor")])
    marker = tmp_path / "ran"
    assert editing.edit_bytes(b"x", ["sh", "-c", f"touch {marker}; echo y > \"$1\"", "sh"]) == b"y\n"
    assert marker.exists()


@pytest.mark.parametrize("args", [
    ["ct", "snapshot", "create", "web1", "a/b"],
    ["ct", "snapshot", "restore", "web1", ".."],
    ["ct", "profile", "create", "bad/name"],
    ["ct", "profile", "create", "p1", "--limit", "memory=lots"],
    ["ct", "profile", "apply", "web1", "default,default"],
    ["ct", "copy", "web1", "bad_name"],
    ["ct", "file", "edit", "web1/../etc/shadow"],
])
def test_cli_bad_input_of_the_new_commands_exits_2(args):
    proc = _vpd(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "error:" in proc.stderr


def _token(**fields) -> str:
    import base64
    import json

    data = {"client_name": "vpd", "fingerprint": "ab" * 32, "addresses": ["198.18.6.12:8443"], "secret": "s3cr3t",
            "expires_at": "0001-01-01T00:00:00Z", **fields}
    return base64.b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_trust_tokens():
    from vpd.ct import trust

    t = trust.parse_token(_token())
    assert (t.fingerprint, t.secret, t.addresses, t.client_name) == ("ab" * 32, "s3cr3t", ["198.18.6.12:8443"], "vpd")
    for bad in ("", "not base64!", "aGVsbG8", _token(fingerprint="short"), _token(secret=""),
                base64_of("[1, 2]")):
        with pytest.raises(UsageError):
            trust.parse_token(bad)


def base64_of(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_client_certificate_is_made_once_with_a_private_key(tmp_path, monkeypatch):
    import ssl
    import stat

    from vpd.ct import trust

    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    crt, key = trust.ensure_client_cert()
    assert stat.S_IMODE(key.stat().st_mode) & 0o077 == 0
    pem = crt.read_text()
    assert len(trust.fingerprint_of(pem)) == 64
    assert trust.ensure_client_cert() == (crt, key) and crt.read_text() == pem  # kept
    ctx = trust.ssl_context(crt, (crt, key))  # its own certificate as a pinned one: it loads
    assert ctx.check_hostname is False and ctx.verify_mode == ssl.CERT_REQUIRED


def test_trust_refuses_a_server_whose_certificate_is_not_the_tokens(tmp_path, monkeypatch):
    from vpd.core.errors import VpdError
    from vpd.ct import trust

    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    crt, _ = trust.ensure_client_cert()
    monkeypatch.setattr(trust, "fetch_server_cert", lambda address, timeout=10: crt.read_text())
    with pytest.raises(VpdError, match="not trusting"):
        trust.pin("hostb", "198.18.6.12:8443", trust.parse_token(_token()))
    assert not trust.pinned_server_cert("hostb").exists()
    good = trust.parse_token(_token(fingerprint=trust.fingerprint_of(crt.read_text())))
    assert trust.pin("hostb", "198.18.6.12:8443", good).read_text() == crt.read_text()


def test_trust_needs_an_https_host(tmp_path):
    inv = tmp_path / "inv.toml"
    inv.write_text('[[hosts]]\nname = "here"\nuri = "test:///default"\nincus = "unix:/nonexistent/unix.socket"\n')
    proc = subprocess.run([sys.executable, "-m", "vpd", "--inventory", str(inv), "ct", "trust", "--host", "here",
                           "--token", _token()], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nothing to trust" in proc.stderr
