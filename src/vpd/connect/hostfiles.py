"""Files on a host: backups, imported images and exported disks live where the VM runs (QEMU
reads and writes them there). vpd reads, writes and checks them through the host's Runner
(argv, never a shell), so the same code works on the local machine and over SSH."""
from __future__ import annotations

import json
import posixpath
import re
import time

from ..core.errors import UsageError, VpdError
from .inventory import Host
from .ssh import Runner, runner_for

# Control characters and backslashes: they split or escape lines in the tools' output
# (sha256sum, find), and never belong in a directory vpd makes.
_UNSAFE_PATH = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def require_host_path(path: str, what: str) -> str:
    """An absolute, normalized path: no '..' steps, no control characters."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise UsageError(f"{what} must be an absolute path on the host, got {path!r}")
    if _UNSAFE_PATH.search(path):
        raise UsageError(f"{what} {path!r} contains control characters or a backslash",
                         hint="give a path of plain characters")
    if ".." in path.split("/"):
        raise UsageError(f"{what} {path!r} contains '..'", hint="give the real path")
    return posixpath.normpath(path)


def require_host_dir(path: str, what: str = "backup directory") -> str:
    normal = require_host_path(path, what)
    if normal == "/":
        raise UsageError(f"{what} cannot be /")
    return normal


def qemu_img_pids(ps_output: str, path: str) -> list[int]:
    """PIDs, from `ps -eo pid=,args=`, of the qemu-img processes that name `path` as an argument."""
    pids = []
    for line in ps_output.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].isdigit() and posixpath.basename(fields[1]) == "qemu-img" \
                and path in fields[2:]:
            pids.append(int(fields[0]))
    return pids


class HostFiles:
    """Files on one host. Large copies (qemu-img) get generous timeouts."""

    def __init__(self, host: Host, runner: Runner | None = None):
        self.host = host
        self.runner = runner or runner_for(host, timeout=120)

    def exists(self, path: str) -> bool:
        return self.runner.run(["test", "-e", path], check=False).ok

    def is_dir(self, path: str) -> bool:
        return self.runner.run(["test", "-d", path], check=False).ok

    def make_dir(self, path: str) -> None:
        self.runner.run(["mkdir", "-p", "--", path])

    def write(self, path: str, data: bytes, mode: str = "0644") -> None:
        self.runner.run_bytes(["dd", f"of={path}", "status=none"], data)
        self.runner.run(["chmod", mode, "--", path])

    def read(self, path: str) -> bytes:
        return self.runner.run_bytes(["cat", "--", path])

    def copy_file(self, source: str, dest: str) -> None:
        """A byte copy of one file (sparse where the source is), replacing `dest`."""
        self.runner.run(["cp", "--sparse=auto", "--", source, dest])

    def remove_file(self, path: str) -> None:
        """Remove one file; a missing one is fine."""
        self.runner.run(["rm", "-f", "--", path])

    def remove_tree(self, path: str) -> None:
        self.runner.run(["rm", "-rf", "--", path], check=False)

    def sha256(self, paths: list[str]) -> dict[str, str]:
        if not paths:
            return {}
        out = self.runner.run(["sha256sum", "--", *paths], timeout=1800).stdout
        sums = {}
        for line in out.splitlines():
            escaped = line.startswith("\\")  # GNU: a name with '\\' or a newline is escaped
            digest, _, name = line[escaped:].partition("  ")
            if escaped:
                name = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), name)
            sums[name] = digest
        return sums

    def realpaths(self, paths: list[str]) -> dict[str, str | None]:
        """Each path with its symlinks resolved (None when it does not exist)."""
        if not paths:
            return {}
        out = self.runner.run(["realpath", "-z", "-e", "--", *paths], check=False).stdout
        resolved = [r for r in out.split("\0")]
        if len(resolved) == len(paths) + 1 and resolved[-1] == "":
            return dict(zip(paths, resolved[:-1], strict=True))
        # Some are missing: realpath skipped them, so ask one by one.
        return {p: (self.runner.run(["realpath", "-e", "--", p], check=False).stdout.rstrip("\n") or None)
                for p in paths}

    def image_info(self, path: str) -> dict:
        """qemu-img's view of one image (format, virtual size, bytes on disk)."""
        out = self.runner.run(["qemu-img", "info", "--output=json", "-U", "--", path]).stdout
        return json.loads(out)

    def data_bytes(self, path: str) -> int:
        """Bytes of data the image itself holds (its own allocated clusters, not a backing file's)."""
        out = self.runner.run(["qemu-img", "map", "--output=json", "-U", "--", path], timeout=600).stdout
        return sum(extent["length"] for extent in json.loads(out) if extent.get("data") and extent.get("depth", 0) == 0)

    def find_manifests(self, root: str) -> list[str]:
        if not self.is_dir(root):
            raise UsageError(f"{root} is not a directory on {self.host.name}")
        out = self.runner.run(["find", root, "-mindepth", "3", "-maxdepth", "3", "-name", "manifest.json",
                               "-type", "f"]).stdout
        return sorted(line for line in out.splitlines() if line)

    def qemu_img(self, argv: list[str], timeout: float = 3600) -> None:
        result = self.runner.run(["qemu-img", *argv], check=False, timeout=timeout)
        if not result.ok:
            raise VpdError(f"{self.host.name}: qemu-img {argv[0]} failed: {result.stderr.strip() or result.stdout.strip()}")

    def end_qemu_img(self, path: str, wait_s: float = 30.0) -> list[int]:
        """End the qemu-img processes writing `path` (a copy whose vpd died: its SSH session ends
        with it, the remote qemu-img does not); their PIDs, once they are gone."""
        pids = qemu_img_pids(self.runner.run(["ps", "-eo", "pid=,args="]).stdout, path)
        if not pids:
            return []
        self.runner.run(["kill", "--", *map(str, pids)], check=False)
        deadline = time.monotonic() + wait_s
        while self.runner.run(["kill", "-0", "--", *map(str, pids)], check=False).ok:
            # kill -0 succeeds while any of them lives
            if time.monotonic() >= deadline:
                raise VpdError(f"qemu-img (PID {', '.join(map(str, pids))}) on {self.host.name} does not end")
            time.sleep(0.2)
        return pids
