"""The web console's ASGI app: the REST API under /api/v1 and the pages, one process.

Every request gets its own `Session` (its own notices) over the inventory resolved once and
one shared set of libvirt connections; mutating calls run their operation — the same one the
CLI runs — in a background job (jobs.py) and answer 202 with its id."""
from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..connect import inventory as inv
from ..connect.inventory import Host, Inventory
from ..connect.libvirt_conn import Connections
from ..core.errors import VpdError
from ..ops import Session
from .errors import HttpError, error_body, status_for
from .jobs import Jobs
from .tokens import TokenStore

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR = STATIC / "vendor" / "node_modules"  # scripts/setup.sh installs the npm packages here
API = "/api/v1"
log = logging.getLogger("vpd.web")


class SharedConnections(Connections):
    """One connection per host for the whole server; opening one is serialized so two
    requests never open two (test:// instances and SSH tunnels are per connection)."""

    def __init__(self, timeout: float = 10.0):
        super().__init__(timeout)
        self._open_lock = threading.Lock()

    def get(self, host: Host):
        with self._open_lock:
            return super().get(host)


class Backend:
    """What the routes share: the inventory (resolved on first use) and the connections."""

    def __init__(self, inventory: Inventory | str | Path | None):
        self._inventory = inventory if isinstance(inventory, Inventory) else None
        self._inventory_path = None if isinstance(inventory, Inventory) else inventory
        self._lock = threading.Lock()
        self.conns = SharedConnections()

    @property
    def inventory(self) -> Inventory:
        with self._lock:
            if self._inventory is None:
                self._inventory = inv.resolve(self._inventory_path)
            return self._inventory

    def session(self) -> Session:
        """A Session for one request; never close() it (the connections outlive it)."""
        return Session(self.inventory, connections=self.conns)

    def close(self) -> None:
        self.conns.close()


def create_app(inventory: Inventory | str | Path | None = None, *, read_only: bool = False,
               tokens: TokenStore | None = None, secure_cookies: bool = False, workers: int = 4) -> FastAPI:
    """The app. `inventory`: an Inventory, a path, or None for the CLI's default resolution."""
    from .api.console import open_console as console_opener
    from .api.display import locate_display

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.jobs.close()
        app.state.backend.close()

    app = FastAPI(title="vpd", lifespan=lifespan, version=__version__, openapi_url=f"{API}/openapi.json",
                  docs_url=f"{API}/docs",
                  redoc_url=None,
                  description="The REST API of vpd: the same operations as the CLI. Send "
                              "`Authorization: Bearer <token>` (`vpd web token create`). Changes answer 202 with a "
                              "job: poll `/api/v1/jobs/{id}` or stream `/api/v1/jobs/{id}/events`.")
    app.state.backend = Backend(inventory)
    app.state.tokens = tokens or TokenStore()
    app.state.jobs = Jobs(workers=workers)
    app.state.read_only = read_only
    app.state.secure_cookies = secure_cookies
    app.state.assets = VENDOR.is_dir()
    app.state.console_opener = console_opener  # what the serial console websocket bridges to
    app.state.display_locator = locate_display  # where the graphical console websocket connects

    @app.exception_handler(VpdError)
    @app.exception_handler(HttpError)
    async def vpd_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_for(exc)
        if not request.url.path.startswith(API):  # a page: log in, or an error page
            if status == 401:
                return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            from .auth import identify
            from .pages import render

            return render(request, "error.html", identify(request), status=status, error=error_body(exc))
        return JSONResponse(error_body(exc), status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"invalid request: {problems}", "hint": f"see {API}/docs",
                             "kind": "UsageError", "status": 400}, status_code=400)

    from . import pages, pages_vm
    from .api import (
        access,
        backups,
        clusters,
        console,
        containers,
        display,
        hosts,
        iscsi,
        jobs,
        journal,
        migrations,
        networks,
        ovf,
        pools,
        practicas,
        recovery,
        snapshots,
        templates,
        vm_devices,
        vms,
        volumes,
    )

    for module in (hosts, vms, vm_devices, snapshots, migrations, pools, volumes, iscsi, networks, backups, templates,
                   ovf, clusters, access, containers, recovery, practicas, journal, jobs, console, display):
        app.include_router(module.router, prefix=API)
    for extension in _router_extensions(ROUTER_ENTRY_POINTS):
        app.include_router(extension.load(), prefix=API)
    # Pages other packages plug in (the lab's /lab) get their link in the header.
    app.state.nav = []
    for extension in _router_extensions(PAGE_ENTRY_POINTS):
        app.include_router(extension.load())
        app.state.nav.append((extension.name.capitalize(), f"/{extension.name}"))
    app.include_router(pages.router)
    app.include_router(pages_vm.router)
    if app.state.assets:
        app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")
    else:
        log.warning("web assets missing (%s): pages work without htmx; run scripts/setup.sh", VENDOR)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app


ROUTER_ENTRY_POINTS = "vpd.web.routers"
PAGE_ENTRY_POINTS = "vpd.web.pages"


def _router_extensions(group: str) -> list:
    """Routers other packages plug in through an entry point: `vpd.web.routers` under /api/v1,
    `vpd.web.pages` at the root with a link named after the entry point (the lab registers
    /api/v1/lab and /lab this way: the console depends on no test bed)."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=group), key=lambda ep: ep.name)
