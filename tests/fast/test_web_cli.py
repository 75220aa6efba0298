"""`vpd web`'s command line: where it may listen, and its tokens."""
from __future__ import annotations

import json

import pytest

from vpd.core.errors import UsageError
from vpd.web.server import Listen, check_exposure, first_token, parse_listen
from vpd.web.tokens import TokenStore

from .conftest import run_vpd


@pytest.mark.parametrize("text, host, port, loopback", [
    ("127.0.0.1:8080", "127.0.0.1", 8080, True), ("localhost:80", "localhost", 80, True),
    ("[::1]:8443", "::1", 8443, True), (":9000", "127.0.0.1", 9000, True),
    ("0.0.0.0:8080", "0.0.0.0", 8080, False), ("192.0.2.5:8080", "192.0.2.5", 8080, False),
    ("web.example.org:8080", "web.example.org", 8080, False)])
def test_parse_listen(text, host, port, loopback):
    where = parse_listen(text)
    assert (where.host, where.port, where.loopback) == (host, port, loopback)


@pytest.mark.parametrize("bad", ["8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "[::1]8080", "h:x"])
def test_bad_listen_refused(bad):
    with pytest.raises(UsageError, match="--listen"):
        parse_listen(bad)


def test_off_loopback_needs_tls_or_insecure(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x"), key.write_text("x")
    out = Listen("0.0.0.0", 8080)
    with pytest.raises(UsageError, match="not a loopback address"):
        check_exposure(out, None, None, False)
    assert check_exposure(out, None, None, True) is False
    assert check_exposure(out, str(cert), str(key), False) is True
    assert check_exposure(Listen("127.0.0.1", 8080), None, None, False) is False
    with pytest.raises(UsageError, match="go together"):
        check_exposure(out, str(cert), None, False)


def test_first_start_makes_one_operator_token(tmp_path, monkeypatch):
    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    store = TokenStore()
    token = first_token(store)
    assert token and store.verify(token).role == "operator"
    assert first_token(store) is None and len(store.list()) == 1
    assert (store.path.stat().st_mode & 0o777) == 0o600


def test_token_commands_and_exposure_exit_codes(tmp_path, monkeypatch):
    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    made = json.loads(run_vpd("web", "token", "create", "--role", "viewer", "--json", check_rc=0).stdout)
    assert made["role"] == "viewer" and made["token"].startswith(f"vpd_{made['id']}_")
    listed = json.loads(run_vpd("web", "token", "list", "--json", check_rc=0).stdout)
    assert listed == [{"id": made["id"], "role": "viewer", "created": made["created"], "label": ""}]
    run_vpd("web", "token", "revoke", made["id"], check_rc=0)
    assert "no web token" in run_vpd("web", "token", "revoke", made["id"], check_rc=2).stderr
    assert "not a loopback" in run_vpd("web", "--listen", "0.0.0.0:8080", check_rc=2).stderr
    assert run_vpd("web", "token", "create", "--role", "admin", check_rc=2).returncode == 2
