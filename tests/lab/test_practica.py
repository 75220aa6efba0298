"""`vpd practica check 4` on the session's lab, after the seed's hand procedure for
the key: ssh-keygen -t rsa -b 4096 on the source, ssh-copy-id to the destination,
and the seed's `sed -i '/<key part>/d'` as the revocation. The grader must fail the
key goal and name the fix; after an exact removal (vpd access's, by blob) it passes."""
from __future__ import annotations

import json

import pytest

from vpd.access import authorized_keys as ak
from vpd.access.remote import edit_authorized_keys
from vpd.core import paths
from vpd.lab import control, hostproc

from .conftest import vpd

pytestmark = pytest.mark.lab


def _pid(name: str) -> int:
    return control.load_state().host(name).holder_pid


def _check() -> tuple[int, dict]:
    proc = vpd("practica", "check", "4", "--hosts", "hosta,hostb", "--vm", VM, "--json", "--lang", "en", timeout=120)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    [pair] = json.loads(proc.stdout)["pairs"]
    return proc.returncode, {g["id"]: g for g in pair["goals"]}


VM = "mvp4_lab"


@pytest.fixture
def unmigrated_vm(lab):
    """The seed's mvp4_<tag>, its disk in the shared pool, still on the source (not started: a
    defined guest is all the VM goals read)."""
    proc = vpd("vm", "create", VM, "--host", "hosta", "--lab-guest", "--disk", "size=16M,pool=CONT_VOL_COMP")
    assert proc.returncode == 0, proc.stderr
    yield VM
    vpd("vm", "undefine", VM, "--host", "hosta", "--remove-storage")


def test_check_4_catches_the_key_the_seeds_sed_left_and_passes_after_an_exact_removal(lab, lab_inventory,
                                                                                       unmigrated_vm):
    dst = lab_inventory.get("hostb")
    src_ssh = paths.lab_dir() / "hosts" / "hosta" / "root-ssh"
    keys_file = paths.lab_dir() / "hosts" / "hostb" / "root-ssh" / "authorized_keys"
    original = keys_file.read_bytes()
    try:
        # The seed, §3.3.1: a 4096-bit RSA pair for root on the source (again until its base64 holds a
        # '/', as ~99% of them do), then ssh-copy-id, which appends the public key on the destination.
        for _ in range(5):
            for f in ("id_rsa", "id_rsa.pub"):
                (src_ssh / f).unlink(missing_ok=True)
            hostproc.run_in_host(_pid("hosta"), ["ssh-keygen", "-q", "-t", "rsa", "-b", "4096", "-N", "",
                                                 "-C", "root@hosta.vpd.lab", "-f", "/root/.ssh/id_rsa"])
            pub = (src_ssh / "id_rsa.pub").read_text().strip()
            blob = pub.split()[1]
            if "/" in blob:
                break
        assert "/" in blob
        keys_file.write_bytes(ak.append_line(keys_file.read_bytes(), pub))

        # §3.3.4, run on the destination as the seed's ssh command runs it there.
        hostproc.run_in_host(_pid("hostb"), ["bash", "-c", f"sed -i '/{blob}/d' /root/.ssh/authorized_keys"],
                             check=False)
        assert ak.has_key(keys_file.read_bytes(), blob), "the seed's sed removed an RSA key with '/'?"

        rc, goals = _check()
        assert rc == 1
        key = goals["key-revoked"]
        assert not key["ok"], key
        [c] = key["checks"]
        assert "hosta's own public key" in c["detail"] and "the seed's sed cannot remove this key" in c["detail"]
        assert "grep -vF" in c["fix"] and blob in c["fix"]
        assert goals["fqdn"]["ok"], goals["fqdn"]  # the lab's names are right...
        assert not goals["firewall"]["ok"]  # ...its migration range is closed (host prepare opens it)
        assert any("vpd host prepare hosta hostb" in (x["fix"] or "") for x in goals["firewall"]["checks"])
        # The VM was found by its seed name; not migrated yet, but its storage is shared and readable.
        migrated = {c["name"]: c for c in goals["migrated"]["checks"]}
        assert not migrated[f"{VM} defined on hostb"]["ok"]
        assert migrated[f"{VM} defined on hostb"]["fix"] == f"vpd migrate {VM} --to hostb --persistent --undefinesource"
        assert goals["shared-storage"]["ok"], goals["shared-storage"]
        assert goals["disk-readable"]["ok"], goals["disk-readable"]

        # The exact removal `vpd access revoke` makes: by key blob, every other byte kept.
        edit_authorized_keys(dst, lambda data: ak.remove_key(data, blob)[0], create=False)
        assert not ak.has_key(keys_file.read_bytes(), blob)
        rc, goals = _check()
        assert goals["key-revoked"]["ok"], goals["key-revoked"]
        assert rc == 1  # the other goals still fail
    finally:
        keys_file.write_bytes(original)
        for f in ("id_rsa", "id_rsa.pub"):
            (src_ssh / f).unlink(missing_ok=True)
