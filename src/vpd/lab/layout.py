"""The lab's shape, as pure data and pure functions: names, addresses, paths and
the config files each lab host gets. Nothing here touches the system, so all of
it is unit-tested without root."""
from __future__ import annotations

import ipaddress
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..connect.inventory import Host, Inventory
from ..core.errors import UsageError
from ..hostprep.ports import IPERF3_PORT, LIBVIRT_PORTS, MIGRATION_PORTS, SSH_PORT

DOMAIN = "vpd.lab"
FIRST_HOST_OCTET = 11
MAX_HOSTS = 8
SHARED_POOL = "CONT_VOL_COMP"
# The seed's path for the shared pool; the same path on every host.
SHARED_MOUNT = "/var/lib/libvirt/images/COMPARTIDO"
# Machine paths each lab host keeps private: an overlay per host on the machine's
# own tree, so a host's writes (the hacluster password in /etc/shadow, corosync
# and pacemaker state, a per-host systemctl) never reach the machine or another
# host. Paths a package did not install are skipped.
PRIVATE_OVERLAYS = ("/etc", "/usr", "/var/lib/corosync", "/var/lib/pacemaker", "/var/lib/pcsd",
                    "/var/log/corosync", "/var/log/pacemaker", "/var/log/pcsd")
# Where a lab host reaches the lab's power switch (vpd.lab.pdu) for fencing.
PDU_MOUNT = "/run/vpd-lab"
PDU_SOCKET_NAME = "pdu.sock"
# A link without shaping is a veth pair, bound by the CPU rather than a wire; the
# migration policy is told 10 Gbit/s for it.
UNSHAPED_LINK_MBIT = 10_000


def lab_net() -> int:
    """Which lab network (0-7, $VPD_LAB_NET): labs on different ones run side by side."""
    raw = os.environ.get("VPD_LAB_NET", "0")
    if not raw.isdigit() or not 0 <= int(raw) <= 7:
        raise UsageError(f"VPD_LAB_NET must be 0-7, not {raw!r}")
    return int(raw)


def bridge_name() -> str:
    return f"vpdlab{lab_net()}"


def subnet() -> ipaddress.IPv4Network:
    # RFC 2544 benchmarking range: never routed, never anyone else's network.
    return ipaddress.ip_network(f"198.18.{lab_net()}.0/24")


def bridge_address() -> ipaddress.IPv4Address:
    return subnet().network_address + 1


def veth_prefix() -> str:
    return f"vpd{lab_net()}-"


def host_name(index: int) -> str:
    return "host" + chr(ord("a") + index)


@dataclass(frozen=True)
class LabHost:
    index: int
    root: Path  # the lab directory

    @property
    def name(self) -> str:
        return host_name(self.index)

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{DOMAIN}"

    @property
    def address(self) -> str:
        return str(subnet().network_address + FIRST_HOST_OCTET + self.index)

    @property
    def mac(self) -> str:
        """Fixed per host, like a real NIC: after a power cycle its peers' ARP caches stay right."""
        return f"02:76:70:{lab_net():02x}:00:{self.index + 1:02x}"

    @property
    def veth(self) -> str:
        return veth_prefix() + self.name

    @property
    def dir(self) -> Path:
        return self.root / "hosts" / self.name

    @property
    def host_uuid(self) -> str:
        # Stable per lab host, distinct between hosts: libvirt refuses to migrate
        # between two daemons with the same host UUID.
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, self.fqdn))

    def binds(self) -> list[tuple[Path, str]]:
        """Per-host directories mounted over the system paths inside the host."""
        d = self.dir
        return [
            (d / "etc-libvirt", "/etc/libvirt"),
            (d / "lib-libvirt", "/var/lib/libvirt"),
            (d / "cache-libvirt", "/var/cache/libvirt"),
            (d / "log-libvirt", "/var/log/libvirt"),
            (d / "root-ssh", "/root/.ssh"),
            # bash sources ~/.bashrc for every command sshd runs: the machine's (pyenv init and
            # its rehash lock, seconds to minutes under load) must not run in a lab host.
            (d / "root-bashrc", "/root/.bashrc"),
            (d / "etc-hosts", "/etc/hosts"),
            (self.root / "shared", SHARED_MOUNT),
            (self.root / "pdu", PDU_MOUNT),
        ]

    def overlays(self) -> list[tuple[Path, Path, str]]:
        """(upper, work, target) for each private overlay (PRIVATE_OVERLAYS)."""
        base = self.dir / "overlay"
        out = []
        for target in PRIVATE_OVERLAYS:
            name = target.strip("/").replace("/", "-")
            out.append((base / name / "upper", base / name / "work", target))
        return out

    def overlay_upper(self, target: str) -> Path:
        return next(upper for upper, _, t in self.overlays() if t == target)


def lab_hosts(root: Path, count: int) -> list[LabHost]:
    if not 1 <= count <= MAX_HOSTS:
        raise UsageError(f"a lab has 1 to {MAX_HOSTS} hosts, not {count}")
    return [LabHost(i, root) for i in range(count)]


def etc_hosts(hosts: list[LabHost]) -> str:
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{h.address} {h.fqdn} {h.name}" for h in hosts]
    return "\n".join(lines) + "\n"


def libvirtd_conf(host: LabHost) -> str:
    # TCP without auth is for the lab only: the lab network is private to this machine.
    return f"""# written by vpd lab for {host.fqdn}
listen_tls = 0
listen_tcp = 1
listen_addr = "{host.address}"
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "{host.host_uuid}"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


def qemu_conf() -> str:
    # No systemd/cgroup manager and no SELinux/AppArmor inside lab hosts (docs/lab.md, "qemu.conf in a lab host").
    return f"""# written by vpd lab
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
# QEMU uses the host's own private /dev (built by the holder); libvirt's per-guest
# /dev namespace cannot move mounts out of it.
namespaces = [ ]
migration_port_min = {MIGRATION_PORTS[0]}
migration_port_max = {MIGRATION_PORTS[1]}
"""


def sshd_config(host: LabHost) -> str:
    return f"""# written by vpd lab for {host.fqdn}
ListenAddress {host.address}
Port {SSH_PORT}
HostKey {host.dir / "sshd" / "ssh_host_ed25519_key"}
PidFile /run/sshd.pid
AuthorizedKeysFile /root/.ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
"""


def firewall_ruleset() -> str:
    """A host firewall that starts closed, as on a fresh RHEL host: SSH open, libvirt's ports
    only to the lab's own network (its hosts and the machine), never to the world, so the lab
    hosts pass the exposure checks a real host must pass (`vpd host check security`, `vpd
    practica check 4`). Opening the migration range to a peer is `vpd host prepare`'s job.
    iperf3's port is open to the lab's network too, for `vpd net perf` between lab hosts."""
    libvirt_ports = ", ".join(str(p) for p in LIBVIRT_PORTS)
    return f"""table inet vpd_lab_host
delete table inet vpd_lab_host
table inet vpd_lab_host {{
    chain input {{
        type filter hook input priority filter; policy drop;
        iifname != "eth0" accept
        ct state established,related accept
        ct state invalid drop
        meta l4proto {{ icmp, ipv6-icmp }} accept
        tcp dport {SSH_PORT} accept
        ip saddr {subnet()} tcp dport {{ {libvirt_ports} }} accept
        ip saddr {subnet()} tcp dport {IPERF3_PORT} accept
    }}
}}
"""


def link_mbit(rate_bps: int | None) -> int:
    """The link rate the inventory states: the shaping in Mbit/s (at least 1), or
    UNSHAPED_LINK_MBIT for a link without shaping."""
    return max(1, round(rate_bps / 1_000_000)) if rate_bps else UNSHAPED_LINK_MBIT


def inventory_toml(hosts: list[LabHost], identity: Path, known_hosts: Path, link_rate_bps: int | None) -> str:
    """The lab's inventory: what the product needs to know of the lab (the link's
    rate, that these are lab hosts) travels here, never through the lab's state."""
    inventory = Inventory(hosts=[
        Host(name=h.name, uri=f"qemu+tcp://{h.address}/system", address=h.address, ssh_identity=str(identity),
             ssh_known_hosts=str(known_hosts), fqdn=h.fqdn, link_mbit=link_mbit(link_rate_bps), lab=True,
             # Its incusd's socket as the machine sees it (lab/incus.py); unused without Incus.
             incus=f"unix:{h.dir / 'incus' / 'unix.socket'}")
        for h in hosts])
    return "# written by `vpd lab up`; removed by `vpd lab down`\n" + inventory.to_toml()
