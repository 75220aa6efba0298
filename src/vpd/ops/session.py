"""One request's view of the infrastructure: the inventory in force and its connections."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from ..connect import inventory as inv
from ..connect.inventory import Host, Inventory
from ..connect.libvirt_conn import Connections
from ..core.errors import HostUnreachable

T = TypeVar("T")


class Session:
    """Resolves the inventory once (lazily: `--version` and pure commands never read it) and
    opens each host's libvirt connection on first use; `close()` closes them all.

    `notices` collects facts a front end should show beside the result (e.g. which host a VM
    was found on when the user did not say)."""

    def __init__(self, inventory: Inventory | str | Path | None = None, connections: Connections | None = None):
        self._inventory = inventory if isinstance(inventory, Inventory) else None
        self._inventory_path = None if isinstance(inventory, Inventory) else inventory
        self._conns = connections
        self.notices: list[str] = []

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = inv.resolve(self._inventory_path)
        return self._inventory

    @property
    def conns(self) -> Connections:
        if self._conns is None:
            self._conns = Connections()
        return self._conns

    def host(self, ref: str) -> Host:
        """A host by inventory name, FQDN or address (NotFound, exit 2, when none matches)."""
        return self.inventory.get(ref)

    def hosts(self, refs: list[str] | tuple[str, ...] | None = None) -> list[Host]:
        """The named hosts, or every host of the inventory when none is named."""
        return self.inventory.select(list(refs) if refs else None)

    def connection(self, host: Host) -> libvirt.virConnect:
        return self.conns.get(host)

    def call(self, host: Host, fn: Callable[[libvirt.virConnect], T]) -> T:
        """fn(conn) with libvirt's errors explained for this host."""
        return self.conns.call(host, fn)

    def touched_hosts(self) -> set[str]:
        """The hosts this request has talked to so far (their libvirt connections are open)."""
        return self._conns.open_hosts() if self._conns is not None else set()

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def close(self) -> None:
        if self._conns is not None:
            self._conns.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def require_an_answer(report: Any, errors: list[str | None], what: str = "hosts") -> Any:
    """A listing over several hosts: partial results (with each host's error) when some host
    answered; when none did, HostUnreachable (exit 1) carrying the report, so front ends still
    show each host's error, and scripts do not take an empty listing for 'nothing there'."""
    if errors and all(errors):
        exc = HostUnreachable(f"none of the {len(errors)} {what} answered" if len(errors) > 1
                              else f"the host did not answer: {errors[0]}",
                              hint="check that the hosts are up and libvirt reachable (`vpd host list` shows each "
                                   "host's error)")
        exc.report = report
        raise exc
    return report
