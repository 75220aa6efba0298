"""`vpd vm iface link` (virsh domif-setlink) on a recorded domain: libvirt's test driver cannot
update an interface ("persistent update of device 'interface' is not supported"), so a small
stand-in domain takes the device XML the way libvirt does; the real one runs in
tests/lab/test_bonding.py."""
from __future__ import annotations

import libvirt
import pytest
from lxml import etree

from vpd.connect.inventory import Host
from vpd.core.errors import NotFound, UsageError
from vpd.network import ifaces
from vpd.xml.domain import Domain
from vpd.xml.edit import DomainEditor

HOST = Host(name="t1", uri="test:///default")
DOMAIN_XML = """<domain type='qemu'><name>web</name><memory>131072</memory><vcpu>1</vcpu><devices>
  <interface type='network'>
    <mac address='52:54:00:aa:00:01'/><source network='default'/><target dev='vnet0'/>
    <model type='virtio'/><alias name='net0'/>
    <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
  </interface>
  <interface type='bridge'>
    <mac address='52:54:00:aa:00:02'/><source bridge='br0'/><target dev='vnet1'/>
    <model type='virtio'/><link state='down'/>
  </interface>
</devices></domain>"""


class FakeDomain:
    def __init__(self):
        self.xml = {0: DOMAIN_XML, libvirt.VIR_DOMAIN_XML_INACTIVE: DOMAIN_XML}
        self.updates: list[tuple[str, int]] = []

    def name(self):
        return "web"

    def isActive(self):
        return True

    def isPersistent(self):
        return True

    def XMLDesc(self, flags=0):
        return self.xml[flags & libvirt.VIR_DOMAIN_XML_INACTIVE]

    def updateDeviceFlags(self, xml, flags):
        self.updates.append((xml, flags))
        new = etree.fromstring(xml)
        key = 0 if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE else libvirt.VIR_DOMAIN_XML_INACTIVE
        doc = etree.fromstring(self.xml[key])
        for nic in doc.findall("devices/interface"):
            if nic.find("mac").get("address") == new.find("mac").get("address"):
                nic.getparent().replace(nic, new)
        self.xml[key] = etree.tostring(doc, encoding="unicode")


def test_link_down_then_up_by_mac_and_by_device_keeps_the_rest_of_the_nic():
    dom = FakeDomain()
    r = ifaces.set_link(dom, HOST, "52:54:00:AA:00:01", "down")
    assert r["changed"] and r["live"] and r["config"] and r["mac"] == "52:54:00:aa:00:01"
    assert [f for _, f in dom.updates] == [libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG]
    sent = etree.fromstring(dom.updates[0][0])
    # libvirt matches the device by MAC and refuses changes to what cannot change live: the
    # whole interface as reported goes back, alias and PCI address included.
    assert sent.find("link").get("state") == "down" and sent.find("address") is not None
    assert sent.find("alias").get("name") == "net0"
    live = Domain.from_xml(dom.XMLDesc().encode()).interfaces[0]
    assert live.link is not None and live.link.state == "down"
    assert ifaces.set_link(dom, HOST, "vnet0", "down")["changed"] is False
    assert len(dom.updates) == 2
    assert ifaces.set_link(dom, HOST, "vnet0", "up", live=True, config=False)["changed"]
    assert DomainEditor.from_xml(dom.XMLDesc()).interfaces()[0].link_state == "up"
    assert DomainEditor.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).interfaces()[0].link_state == "down"


def test_link_refuses_unknown_nics_and_bad_input():
    dom = FakeDomain()
    with pytest.raises(NotFound):
        ifaces.set_link(dom, HOST, "52:54:00:aa:00:09", "down")
    with pytest.raises(NotFound):
        ifaces.set_link(dom, HOST, "vnet7", "down")
    with pytest.raises(UsageError):
        ifaces.set_link(dom, HOST, "vnet0", "sideways")
    with pytest.raises(UsageError):
        ifaces.set_link(dom, HOST, "01:00:5e:00:00:01", "down")  # multicast is no NIC's MAC
    with pytest.raises(UsageError):
        ifaces.set_link(dom, HOST, "vnet0'/><evil", "down")
    assert dom.updates == []


def test_link_state_is_parsed_and_defaults_to_up():
    nics = Domain.from_xml(DOMAIN_XML.encode()).interfaces
    assert [n.link.state if n.link else "up" for n in nics] == ["up", "down"]
