"""The TCP ports a host needs open to its peers for libvirt and live migration,
in one place: `host prepare`, the migration preflight, the cluster firewall and
the lab all use these.

The migration range is 49152-49216. QEMU's incoming migration listens on a port
libvirt picks from qemu.conf's migration_port_min..migration_port_max, whose
default is 49152-49215 inclusive; the course's README opens 49152-49216, one
port more. vpd opens the course's range: it covers libvirt's default on any
host, and a host already prepared by hand the course's way matches vpd's rule
exactly (so `host prepare` finds nothing to add). The lab configures its
libvirt with this same range, so what it allocates and what it opens agree.
"""
from __future__ import annotations

SSH_PORT = 22
LIBVIRT_PORTS = (16509, 16514)  # libvirtd tcp, tls
# iperf3's own default: the port `vpd net perf` runs its server on unless told otherwise (a
# host's firewall must admit it from the client; the lab's does, from the lab's network).
IPERF3_PORT = 5201
# (first, last), inclusive.
MIGRATION_PORTS = (49152, 49216)
# What `host prepare` opens to each peer: (first, last) ranges, all TCP.
PEER_PORTS: tuple[tuple[int, int], ...] = ((SSH_PORT, SSH_PORT), *((p, p) for p in LIBVIRT_PORTS), MIGRATION_PORTS)


def port_range_text(ports: tuple[int, int] = MIGRATION_PORTS) -> str:
    """'49152-49216' (or '22' for a single port), as firewall rules and hints write it."""
    first, last = ports
    return str(first) if first == last else f"{first}-{last}"
