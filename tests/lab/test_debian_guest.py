"""The Debian test guest (issue 14 §5): vpd's minimal Debian 12 boots on a lab host under TCG,
cloud-init gives it the hostname, user and key asked for, and SSH with that key works."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab


def test_cloud_init_gives_hostname_user_and_key(debian_guest):
    proc = debian_guest.ssh("hostname", "-f")
    assert proc.returncode == 0 and proc.stdout.strip() == debian_guest.hostname, proc.stderr
    status = debian_guest.ssh("cloud-init", "status", "--wait", timeout=180)
    assert "status: done" in status.stdout, (status.stdout, status.stderr)
    # The image was sealed: the guest made its own identity at first boot.
    ids = debian_guest.ssh("cat", "/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key.pub")
    machine_id, host_key = ids.stdout.split("\n")[:2]
    assert len(machine_id) == 32 and host_key.startswith("ssh-ed25519 ")
    sudo = debian_guest.ssh("sudo", "-n", "id", "-u")
    assert sudo.stdout.strip() == "0", sudo.stderr
