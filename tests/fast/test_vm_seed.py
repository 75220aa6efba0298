"""When `vm seed-remove` may take a VM's cloud-init seed away (pure: the evidence read from the
guest agent's `cloud-init status` and from the console), and which drive is the seed."""
from __future__ import annotations

import pytest

from vpd.vm import seed
from vpd.xml.domain import Domain

CONSOLE_DONE = ("[  133.1] cloud-init[367]: Cloud-init v. 22.4.2 running 'modules:final' at Fri, 04 Dec 2026\r\n"
                "[  133.4] cloud-init[367]: Cloud-init v. 22.4.2 finished at Fri, 04 Dec 2026 22:35:05 +0000. "
                "Datasource DataSourceNoCloud [seed=/dev/sr0][dsmode=net].  Up 133.31 seconds\r\n")


def test_console_shows_cloud_init_finished_only_after_its_final_stage():
    assert seed.finished_on_console(CONSOLE_DONE)
    assert not seed.finished_on_console(CONSOLE_DONE.splitlines()[0])
    assert not seed.finished_on_console("")


@pytest.mark.parametrize(("output", "done"), [
    ("status: done\n", True),
    ("\nstatus: running\n", False),
    ("status: not started\n", False),
    ("status: error\n", None),     # it ran, with errors: not taken as proof either way
    ("cloud-init: command not found", None),
])
def test_cloud_init_status_output(output, done):
    assert seed.status_says_done(output) is done


DOMAIN = """<domain type='qemu'><name>c1</name><memory unit='KiB'>131072</memory><vcpu>1</vcpu><os><type>hvm</type></os>
<devices>
  <disk type='file' device='disk'><source file='/p/c1.qcow2'/><target dev='vda' bus='virtio'/></disk>
  <disk type='file' device='cdrom'><source file='/p/install.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
  <disk type='file' device='cdrom'><source file='/p/c1-cidata.iso'/><target dev='sdb' bus='sata'/><readonly/></disk>
</devices></domain>"""


def test_the_seed_is_the_cdrom_named_cidata_not_an_installer():
    found = seed.seed_disk(Domain.from_xml(DOMAIN))
    assert found is not None and found.target.dev == "sdb"
    assert seed.seed_disk(Domain.from_xml(DOMAIN.replace("c1-cidata.iso", "other.iso"))) is None
