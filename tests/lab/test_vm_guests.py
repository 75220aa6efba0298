"""Guests as people install them (issue 14) on a lab host: an ISO install with a VNC display
(boot order cdrom then disk; the RFB handshake answers on the host's loopback only) and a
cloud-init NoCloud seed attached read-only (label cidata), removed with the VM. The real
cloud-init boot needs a Debian image the lab does not build yet."""
from __future__ import annotations

import io
import socket
import subprocess

import pycdlib
import pytest

from vpd.core import paths
from vpd.lab import control, hostproc, layout
from vpd.vm import cloudinit
from vpd.xml.domain import Domain

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

MADE = ("gvnc", "gci")
RFB_PROBE = ("import socket,sys; s=socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10); "
             "print(s.recv(12).decode())")


@pytest.fixture(scope="module")
def made(lab):
    yield
    for name in MADE:
        vpd("vm", "destroy", name, "--host", "hosta")
        vpd("vm", "undefine", name, "--host", "hosta", "--remove-storage")


def small_iso(volume_label: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.new(vol_ident=volume_label)
    iso.add_fp(io.BytesIO(b"vpd\n"), 4, "/README.;1")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def test_iso_install_with_vnc_and_a_cloud_init_seed(made, tmp_path):
    shared = paths.lab_dir() / "shared"  # the shared pool's directory as the machine sees it
    (shared / "gst-install.iso").write_bytes(small_iso("INSTALL"))
    iso = f"{layout.SHARED_MOUNT}/gst-install.iso"
    created = vpd_json("vm", "create", "gvnc", "--host", "hosta", "--cdrom", iso, "--memory", "64",
                       "--disk", f"size=16M,pool={layout.SHARED_POOL}", "--graphics", "vnc", "--video", "vga",
                       "--start")
    assert created["started"] and created["cdroms"] == [iso] and len(created["graphics"]["password"]) == 8
    domain = Domain.from_xml(vpd_json("vm", "dumpxml", "gvnc", "--host", "hosta", "--inactive")["xml"])
    assert [b.dev for b in domain.os.boot] == ["cdrom", "hd"]
    assert [(d.device, d.readonly) for d in domain.disks] == [("disk", False), ("cdrom", True)]

    shown = vpd_json("vm", "display", "gvnc", "--host", "hosta")
    port, address = shown["port"], control.load_state().host("hosta").address
    assert shown["listen"] == "127.0.0.1" and shown["uri"] == f"vnc://{address}:{port}"
    assert f"-L {port}:127.0.0.1:{port}" in shown["tunnel"]
    holder = control.load_state().host("hosta").holder_pid
    banner = hostproc.run_in_host(holder, ["python3", "-c", RFB_PROBE, str(port)], timeout=30).stdout
    assert banner.startswith("RFB 003.00"), banner
    with pytest.raises(OSError):  # loopback only: the host's address does not answer
        socket.create_connection((address, port), timeout=3).close()

    vpd_json("vm", "destroy", "gvnc", "--host", "hosta")
    vpd_json("vm", "undefine", "gvnc", "--host", "hosta", "--remove-storage")
    assert (shared / "gst-install.iso").exists()  # the installer ISO is the user's: it stays
    (shared / "gst-install.iso").unlink()

    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    created = vpd_json("vm", "create", "gci", "--host", "hosta", "--disk", f"size=16M,pool={layout.SHARED_POOL}",
                       "--cloud-init", f"user=alice,ssh-key={key}.pub,hostname=gci.lab.example")
    seed = f"{layout.SHARED_MOUNT}/gci-cidata.iso"
    assert created["seed"] == seed and created["cdroms"] == [seed]
    cdrom = [d for d in Domain.from_xml(vpd_json("vm", "dumpxml", "gci", "--host", "hosta")["xml"]).disks
             if d.device == "cdrom"]
    assert [(d.source.file, d.readonly) for d in cdrom] == [(seed, True)]
    listed = vpd_json("vol", "list", layout.SHARED_POOL, "--host", "hosta")["hosts"]
    assert "gci-cidata.iso" in {v["name"] for h in listed for v in h["volumes"]}
    label, files = cloudinit.read_iso((shared / "gci-cidata.iso").read_bytes())
    assert label == "cidata" and key.with_suffix(".pub").read_text().split()[1] in files["user-data"]
    vpd_json("vm", "undefine", "gci", "--host", "hosta", "--remove-storage")
    assert not (shared / "gci-cidata.iso").exists()
