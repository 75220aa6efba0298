"""Free space in pools, checked before a disk is made: the one check behind `vm create`,
`vm clone`, `restore`, `vol create` and `vol clone`.

A disk is counted at the size it can grow to (a thin qcow2 at its capacity): a disk that
can never fill up in its pool is a trap for later, not a saving. Disks planned in one
request are debited from the same running total, so N clones are checked together."""
from __future__ import annotations

import libvirt

from ..connect.libvirt_conn import refresh_pool
from ..core.errors import UsageError


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


class PoolRoom:
    """Free bytes per pool of one host, read once (after a refresh) and debited as disks are planned."""

    def __init__(self, host_name: str):
        self.host_name = host_name
        self.free: dict[str, int] = {}

    def available(self, pool: libvirt.virStoragePool) -> int:
        name = pool.name()
        if name not in self.free:
            try:
                refresh_pool(pool)  # what another host or tool wrote since libvirt last looked
            except libvirt.libvirtError:
                pass
            self.free[name] = pool.info()[3]
        return self.free[name]

    def take(self, pool: libvirt.virStoragePool, need: int, what: str,
             hint: str = "free space, a smaller size, or another pool") -> None:
        """Debit `need` bytes for `what`; UsageError (nothing made yet) when the pool cannot hold it."""
        free = self.available(pool)
        if need > free:
            raise UsageError(f"{what} does not fit: pool {pool.name()} on {self.host_name} cannot hold "
                             f"{mib(need)} more ({mib(free)} free)", hint=hint)
        self.free[pool.name()] = free - need
