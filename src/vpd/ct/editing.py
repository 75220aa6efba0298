"""Editing text through the user's editor ($VISUAL, $EDITOR): `ct file edit`, `ct profile edit`.

The editor is run as an argv list (shlex-split, never through a shell) on a private temporary
file; what it leaves there is the new text, and nothing is applied unless it changed and the
editor exited 0 (quitting without saving, or `:cq`, changes nothing)."""
from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from ..core.errors import UsageError, VpdError


def editor_argv(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    text = env.get("VISUAL") or env.get("EDITOR") or "vi"
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot read $EDITOR {text!r}: {exc}") from None
    if not argv:
        raise UsageError("$EDITOR is empty")
    return argv


def edit_bytes(data: bytes, editor: list[str], suffix: str = "") -> bytes | None:
    """The edited bytes, or None when the user left them as they were."""
    with tempfile.TemporaryDirectory(prefix="vpd-edit-") as tmp:
        f = Path(tmp) / ("edit" + suffix)
        f.write_bytes(data)
        try:
            done = subprocess.run([*editor, str(f)])
        except OSError as exc:
            raise UsageError(f"cannot run the editor {editor[0]!r}: {exc.strerror}",
                             hint="set $EDITOR (or $VISUAL) to an editor on this machine") from None
        if done.returncode != 0:
            raise VpdError(f"the editor exited with {done.returncode}: nothing was changed")
        new = f.read_bytes()
    return None if new == data else new
