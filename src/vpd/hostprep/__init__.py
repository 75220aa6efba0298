"""Preparing hosts for live migration (seed tasks 1 and 2): a unique FQDN that
every peer resolves, and a host firewall that admits the peer hosts, and only
them, to SSH, libvirt and the migration ports (see ports.py). Every change is
recorded, so `unprepare` removes exactly what `prepare` added."""
