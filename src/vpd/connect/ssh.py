"""Commands on a host: over SSH for remote hosts, directly for the local one.

Always an argument list. Over SSH the remote side has a shell whatever we do,
so every argument is quoted on its own (shlex.quote); no command string is ever
assembled from user input."""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core import paths, steps
from ..core.errors import HostUnreachable, VpdError
from .inventory import Host

SSH_UNREACHABLE = 255  # ssh's own exit code for connection/auth failures
INNER_SSH_FAILED = 254  # what `inner_ssh` turns the exit 255 of an ssh run *on* a host into


def inner_ssh(argv: list[str]) -> list[str]:
    """`ssh ARGV...` to run on a host, its exit 255 (its own failure: unreachable, host key,
    authentication) turned into INNER_SSH_FAILED. Over SSH, 255 from the remote command is
    indistinguishable from vpd's own SSH failing: the error would name vpd's hop to the host,
    not the host's hop to its peer."""
    return ["sh", "-c", 'ssh "$@"; rc=$?; [ "$rc" -ne 255 ] || rc=254; exit "$rc"', "sh", *argv]
NOT_FOUND = 127  # a shell's exit code for a missing program
MUX_PERSIST_S = 60
# Reads one line (the secret) from stdin and runs "$@" with prefix+secret appended; exit 97
# when stdin closes before a line arrives (never run the program without its secret).
SECRET_LAST = 'IFS= read -r s || exit 97; p=$1; shift; exec "$@" "$p$s"'


def mux_dir() -> Path:
    return paths.state_dir() / "ssh-mux"


def close_masters() -> None:
    """End every shared SSH connection vpd keeps open (e.g. before its hosts go away)."""
    for socket_path in mux_dir().glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "vpd-mux"],
                       capture_output=True, timeout=10)
        socket_path.unlink(missing_ok=True)


# Standard input kept in a step up to this size; a bigger one (an uploaded file) is summarised.
STEP_INPUT_MAX = 64 * 1024


SECRET = "<secret: not recorded>"


def _redact(argv: list[str]) -> list[str]:
    """CHAP passwords reach tgtadm/targetcli as arguments: never into the journal."""
    out, hide = [], False
    for word in argv:
        if hide:
            out.append(SECRET)
            hide = False
        elif word in ("--password", "--mutual-password"):
            out.append(word)
            hide = True
        elif "password=" in word:
            out.append(word.split("password=", 1)[0] + "password=" + SECRET)
        else:
            out.append(word)
    return out


def exec_step(host: str, ssh: str | None, argv: list[str], stdin: str | bytes | None = None,
              returncode: int | None = None, dry_run: bool = False, secret: bool = False) -> dict:
    """The step (core/steps.py) of one command run, or in a dry run about to be run, on a host.
    Secrets (a private key on stdin, a CHAP password) are replaced by a marker."""
    step: dict = {"kind": "exec", "host": host, "ssh": ssh, "argv": _redact(list(argv)), "input": None}
    if isinstance(stdin, bytes):
        try:
            stdin = stdin.decode()
        except UnicodeDecodeError:
            step["input_bytes"] = len(stdin)
            stdin = None
    if stdin is not None and (secret or "PRIVATE KEY-----" in stdin):
        step["input_secret"] = True
    elif stdin is not None and len(stdin) > STEP_INPUT_MAX:
        step["input_bytes"] = len(stdin.encode())
    elif stdin is not None:
        step["input"] = stdin
    if returncode is not None:
        step["returncode"] = returncode
    if dry_run:
        step["dry_run"] = True
    return step


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner:
    """Runs argv lists on one host."""

    def __init__(self, host: Host, timeout: float = 60.0):
        self.host = host
        self.timeout = timeout

    def command(self, argv: list[str]) -> list[str]:
        return list(argv)

    def _exec(self, argv: list[str], stdin: str | bytes | None, text: bool,
              timeout: float | None, reads: bool = False, secret: bool = False) -> subprocess.CompletedProcess:
        limit = timeout or self.timeout
        try:
            proc = subprocess.run(self.command(argv), input=stdin, capture_output=True, text=text, timeout=limit)
        except subprocess.TimeoutExpired:
            raise VpdError(f"{self.host.name}: `{shlex.join(argv)}` did not finish within {limit:g} s") from None
        except FileNotFoundError:
            # Run directly (no shell), a missing program raises; report it as a shell would.
            missing = f"{argv[0]}: command not found"
            return subprocess.CompletedProcess(argv, NOT_FOUND, "" if text else b"", missing if text else missing.encode())
        self._check_transport(proc.returncode, proc.stderr if text else proc.stderr.decode(errors="replace"))
        if steps.active():
            step = exec_step(self.host.name, self.ssh_target(), argv, stdin, proc.returncode, secret=secret)
            if reads:
                step["query"] = True
            steps.record(step)
        return proc

    def ssh_target(self) -> str | None:
        """The ssh arguments (shell words, ending with user@address) a hand command goes through;
        None: it runs here."""
        return None

    def _check_transport(self, returncode: int, stderr: str) -> None:
        """Raise when the command never reached the host (only SSH can fail that way)."""

    def _failed(self, argv: list[str], returncode: int, message: str) -> VpdError:
        return VpdError(f"{self.host.name}: `{shlex.join(argv)}` failed (exit {returncode}): {message.strip()}")

    def run(self, argv: list[str], *, input: str | None = None, check: bool = True,
            timeout: float | None = None, reads: bool = False, secret: bool = False) -> CommandResult:
        """`reads`: the command only looks (a probe): a hand script leaves it out. `secret`: its
        standard input is a password or key, never recorded."""
        proc = self._exec(argv, input, True, timeout, reads, secret)
        result = CommandResult(list(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise self._failed(argv, result.returncode, result.stderr.strip() or result.stdout)
        return result

    def run_secret(self, argv: list[str], secret: str, *, prefix: str = "", check: bool = True,
                   timeout: float | None = None) -> CommandResult:
        """`argv` followed by one more argument, `prefix` + `secret`, for programs that take a
        secret only as an argument (tgtadm, targetcli). The secret goes on stdin to a shell on
        the host that appends it: it is never in the argv of a process vpd starts (the local
        ssh command line, readable by any local user in /proc/PID/cmdline), only in the final
        program's own, on the host, for the instant it runs."""
        if "\n" in secret or "\0" in secret:
            raise VpdError("a secret passed on stdin cannot hold a line break")
        wrapped = ["sh", "-c", SECRET_LAST, "sh", prefix, *argv]
        proc = self._exec(wrapped, secret + "\n", True, timeout)
        # Errors name the program, not the wrapper: neither holds the secret.
        result = CommandResult(list(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise self._failed(argv, result.returncode, result.stderr.strip() or result.stdout)
        return result

    def run_bytes(self, argv: list[str], data: bytes | None = None, timeout: float | None = None,
                  reads: bool = False) -> bytes:
        """Bytes in and out, for files that must come back byte for byte (text mode
        would fold '\\r\\n' and fail on bytes that are not UTF-8). Raises on failure."""
        proc = self._exec(argv, data, False, timeout, reads)
        if proc.returncode != 0:
            raise self._failed(argv, proc.returncode, proc.stderr.decode(errors="replace"))
        return proc.stdout


class SshRunner(Runner):
    def ssh_options(self) -> list[str]:
        h = self.host
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=5",
                "-p", str(h.ssh_port)]
        if h.ssh_identity:
            opts += ["-i", h.ssh_identity, "-o", "IdentitiesOnly=yes"]
        if h.ssh_known_hosts:
            opts += ["-o", f"UserKnownHostsFile={h.ssh_known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        # One TCP+SSH handshake per host instead of one per command (~0.25 s each):
        # a procedure like `migrate` runs dozens of short remote commands.
        mux = mux_dir()
        mux.mkdir(parents=True, exist_ok=True, mode=0o700)
        opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={mux}/%C", "-o", f"ControlPersist={MUX_PERSIST_S}"]
        return opts

    @property
    def target(self) -> str:
        return f"{self.host.ssh_user}@{self.host.address or self.host.hostname}"

    def ssh_target(self) -> str | None:
        # What a hand command needs to reach the host as vpd did (the identity and port of the
        # inventory; the connection-sharing options are vpd's own business).
        h = self.host
        words = [*(["-i", h.ssh_identity] if h.ssh_identity else []),
                 *(["-p", str(h.ssh_port)] if h.ssh_port != 22 else []),
                 *(["-o", f"UserKnownHostsFile={h.ssh_known_hosts}"] if h.ssh_known_hosts else []), self.target]
        return shlex.join(words)

    def command(self, argv: list[str]) -> list[str]:
        return ["ssh", *self.ssh_options(), self.target, "--", shlex.join(argv)]

    def _check_transport(self, returncode: int, stderr: str) -> None:
        if returncode == SSH_UNREACHABLE:
            raise HostUnreachable(f"{self.host.name}: SSH to {self.target} failed: {stderr.strip()}",
                                  hint="check the address, the SSH identity in the inventory and that sshd runs")


def runner_for(host: Host, timeout: float = 60.0) -> Runner:
    """The local host runs commands directly; every other host over SSH."""
    if host.is_local:
        return Runner(host, timeout)
    return SshRunner(host, timeout)


def tcp_forward_argv(host: Host, address: str, port: int) -> list[str]:
    """ssh's argv whose standard input and output are a TCP connection to address:port as the
    host sees it (`ssh -W`): how a console reaches a display on a remote host's loopback."""
    runner = SshRunner(host)
    return ["ssh", *runner.ssh_options(), "-W", f"[{address}]:{port}" if ":" in address else f"{address}:{port}",
            runner.target]


def tunnel_argv(host: Host, local_port: int, address: str, port: int) -> list[str]:
    """`ssh -N -L` bringing address:port as the host sees it to 127.0.0.1:local_port here. Its own
    connection (no ControlMaster: a shared master would keep the forward after the tunnel ends)."""
    h = host
    opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=5",
            "-o", "ExitOnForwardFailure=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-p", str(h.ssh_port)]
    if h.ssh_identity:
        opts += ["-i", h.ssh_identity, "-o", "IdentitiesOnly=yes"]
    if h.ssh_known_hosts:
        opts += ["-o", f"UserKnownHostsFile={h.ssh_known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    target = f"[{address}]" if ":" in address else address
    return ["ssh", "-N", *opts, "-L", f"127.0.0.1:{local_port}:{target}:{port}", SshRunner(h).target]
