"""Preparing hosts for live migration (seed tasks 1 and 2): a unique FQDN that
every peer resolves, and a host firewall that admits the peer hosts, and only
them, to SSH, libvirt and the migration ports. Every change is recorded, so
`unprepare` removes exactly what `prepare` added."""
from __future__ import annotations

SSH_PORT = 22
LIBVIRT_PORTS = (16509, 16514)  # tcp, tls
# The seed opens 49152-49216; libvirt's default migration_port_min/max is
# 49152-49215, so the seed's range covers it with one port to spare.
MIGRATION_RANGE = (49152, 49216)
# (first, last) port ranges, all TCP.
PORTS: tuple[tuple[int, int], ...] = ((SSH_PORT, SSH_PORT), *((p, p) for p in LIBVIRT_PORTS), MIGRATION_RANGE)
