"""authorized_keys lines: building a grant's line, finding keys as sshd does,
removing by key blob and nothing else."""
from __future__ import annotations

import base64
import hashlib
import subprocess
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpd.access import authorized_keys as ak
from vpd.core.errors import UsageError

OUR_BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + bytes(range(32))).decode()
OUR_KEY = f"ssh-ed25519 {OUR_BLOB} vpd-grant:0123abcd"


def our_line(expiry: str | None = "20300101120000Z") -> str:
    return ak.grant_line(OUR_KEY, "198.18.3.11", "0123abcd", expiry)


# --- building the line --------------------------------------------------------------

def test_grant_line_has_every_restriction_and_the_id():
    line = our_line()
    options, key_type, blob, comment = line.split(" ")
    assert options.split(",") == ['from="198.18.3.11"', "no-pty", "no-port-forwarding", "no-agent-forwarding",
                                  "no-X11-forwarding", 'expiry-time="20300101120000Z"']
    assert (key_type, blob, comment) == ("ssh-ed25519", OUR_BLOB, "vpd-grant:0123abcd")
    assert ak.key_field(line) == ("ssh-ed25519", OUR_BLOB)


def test_grant_line_without_expiry():
    assert "expiry-time" not in our_line(None)


@pytest.mark.parametrize("address", ['198.18.0.1" ssh-rsa AAAA', "*", "198.18.0.0/24", "host.example", ""])
def test_grant_line_takes_an_address_only(address):
    with pytest.raises(UsageError):
        ak.grant_line(OUR_KEY, address, "0123abcd", None)


@pytest.mark.parametrize("kwargs", [
    {"grant_id": "../x"}, {"grant_id": "ABCDEFGH"}, {"expiry_time": '2030"'}, {"public_key": "not a key"},
    {"public_key": "ssh-ed25519 !!!notbase64"},
])
def test_grant_line_rejects_bad_parts(kwargs):
    args = {"public_key": OUR_KEY, "src_address": "198.18.3.11", "grant_id": "0123abcd",
            "expiry_time": None, **kwargs}
    with pytest.raises(UsageError):
        ak.grant_line(**args)


def test_ipv6_source():
    assert ak.grant_line(OUR_KEY, "2001:db8::1", "0123abcd", None).startswith('from="2001:db8::1",')


# --- finding a line's key -----------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    (f"ssh-ed25519 {OUR_BLOB}", OUR_BLOB),
    (f"  \tssh-ed25519 {OUR_BLOB} comment with spaces", OUR_BLOB),
    (f"no-pty ssh-ed25519 {OUR_BLOB}\r\n", OUR_BLOB),
    (f'command="echo \\"ssh-rsa AAAA\\" done",no-pty ssh-ed25519 {OUR_BLOB}', OUR_BLOB),
    (f"# ssh-ed25519 {OUR_BLOB}", None),
    (f"garbage {OUR_BLOB}", None),
    (f'command="unterminated ssh-ed25519 {OUR_BLOB}', None),
    (f'command="echo ssh-ed25519 {OUR_BLOB}" ssh-rsa QUJD', "QUJD"),
    (f"ssh-ed25519 {OUR_BLOB[:-1]}", None),  # broken base64: no key
    ("", None),
    ("   \n", None),
])
def test_key_field(line, expected):
    found = ak.key_field(line)
    assert (found[1] if found else None) == expected


# --- removing by blob ------------------------------------------------------------------

_b64 = st.binary(min_size=1, max_size=48).map(lambda b: base64.b64encode(b).decode())
# No NUL: sshd and ssh-keygen read lines as C strings, so a NUL ends the line for them.
_plain = st.text(st.characters(blacklist_characters='"\\\n\r\x00', blacklist_categories=("Cs",)), max_size=20)
_quoted = st.lists(st.one_of(_plain, st.just('\\"'), st.just(OUR_BLOB), st.just(f"ssh-ed25519 {OUR_BLOB}"),
                             st.just(" ")), max_size=5).map(lambda parts: '"' + "".join(parts) + '"')
_option = st.one_of(st.sampled_from(["no-pty", "restrict", "cert-authority", "no-X11-forwarding"]),
                    st.builds(lambda name, value: f"{name}={value}",
                              st.sampled_from(["command", "from", "environment", "permitopen", "expiry-time"]),
                              _quoted))
_comment = st.one_of(st.just(""), st.text(st.characters(blacklist_characters="\n\x00", blacklist_categories=("Cs",)),
                                          max_size=30).map(lambda t: " " + t),
                     st.just(f" {OUR_BLOB}"), st.just(" vpd-grant:0123abcd"))


@st.composite
def other_line(draw) -> str:
    """Any line that does not authorize OUR_BLOB, however much it mentions it."""
    kind = draw(st.sampled_from(["key", "key", "comment", "blank", "garbage"]))
    if kind == "key":
        blob = draw(_b64.filter(lambda b: b != OUR_BLOB))
        options = draw(st.lists(_option, max_size=3))
        prefix = ",".join(options) + " " if options else ""
        lead = draw(st.sampled_from(["", " ", "\t"]))
        return f"{lead}{prefix}{draw(st.sampled_from(sorted(ak.KEY_TYPES)))} {blob}{draw(_comment)}"
    if kind == "comment":
        return f"#{draw(_comment)} ssh-ed25519 {OUR_BLOB}"
    if kind == "blank":
        return draw(st.sampled_from(["", " ", "\t "]))
    return f"{draw(_plain.filter(lambda t: '-' not in t))} {OUR_BLOB}{draw(_comment)}"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(others=st.lists(st.tuples(other_line(), st.sampled_from(["\n", "\r\n"])), max_size=8),
       positions=st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=3),
       final_newline=st.booleans(), encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_remove_key_drops_exactly_our_lines(others, positions, final_newline, encoding):
    other_bytes = [(text + end).encode(encoding, errors="replace") for text, end in others]
    if other_bytes and not final_newline:
        other_bytes[-1] = other_bytes[-1].rstrip(b"\r\n")
    lines = list(other_bytes)
    ours = (our_line() + "\n").encode()
    for pos in sorted(positions, reverse=True):
        # our line never goes after a last line that lacks its newline (append_line adds one)
        lines.insert(min(pos, len(lines) - (0 if final_newline or not lines else 1)), ours)
    data = b"".join(lines)
    assert ak.has_key(data, OUR_BLOB)
    new, removed = ak.remove_key(data, OUR_BLOB)
    assert removed == len(positions)
    assert new == b"".join(other_bytes)
    assert not ak.has_key(new, OUR_BLOB)


def test_remove_key_of_absent_blob_changes_nothing():
    data = b"ssh-ed25519 QUJD admin\r\n# note\n\n"
    assert ak.remove_key(data, OUR_BLOB) == (data, 0)


def test_split_lines_round_trips():
    for data in (b"", b"a", b"a\n", b"a\r\nb", b"\n\n", b"a\nb\n"):
        assert b"".join(ak.split_lines(data)) == data


@pytest.mark.parametrize("data, expected", [
    (b"", b"LINE\n"), (b"a\n", b"a\nLINE\n"), (b"a", b"a\nLINE\n"), (b"a\r\n", b"a\r\nLINE\n"),
])
def test_append_line(data, expected):
    assert ak.append_line(data, "LINE") == expected


# --- agreement with OpenSSH's own reader --------------------------------------------

@pytest.fixture(scope="module")
def real_keys(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("keys")
    out = []
    for i, kind in enumerate(["ed25519", "ecdsa", "ed25519"]):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"k{i}", "-f", str(d / f"k{i}")], check=True)
        out.append((d / f"k{i}.pub").read_text().split()[0] + " " + (d / f"k{i}.pub").read_text().split()[1])
    return out


def _fingerprint(blob: str) -> str:
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_key_field_agrees_with_ssh_keygen(real_keys, data, tmp_path):
    """ssh-keygen -l reads authorized_keys with sshd's parser: it must find the
    same key on every line as key_field does."""
    lines = []
    for _ in range(data.draw(st.integers(1, 6))):
        key = data.draw(st.sampled_from(real_keys))
        options = data.draw(st.lists(_option, max_size=3))
        lines.append((",".join(options) + " " if options else "") + key + data.draw(_comment))
        lines.append(data.draw(other_line()))
    path = tmp_path / "authorized_keys"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True)
    theirs = [row.split()[1] for row in proc.stdout.splitlines()]
    ours = [_fingerprint(found[1]) for line in lines if (found := ak.key_field(line))]
    # other_line's random blobs are not keys sshd can load, so ssh-keygen skips them
    loadable = {_fingerprint(k.split()[1]) for k in real_keys}
    assert theirs == [fp for fp in ours if fp in loadable]


# --- expiry-time -------------------------------------------------------------------------

def test_format_expiry_utc():
    when = datetime(2030, 7, 1, 12, 34, 56, tzinfo=timezone(timedelta(hours=2)))
    assert ak.format_expiry(when) == "20300701103456Z"


def test_format_expiry_in_standard_time():
    when = datetime(2030, 7, 1, 12, 0, 5, tzinfo=UTC)
    assert ak.format_expiry(when, timedelta(hours=-5)) == "20300701070005"
    assert ak.format_expiry(when, timedelta(hours=5, minutes=30)) == "20300701173005"


@pytest.mark.parametrize("text, expected", [
    ("+0000", timedelta(0)), ("-0500\n", timedelta(hours=-5)), ("+0530", timedelta(hours=5, minutes=30)),
])
def test_parse_utc_offset(text, expected):
    assert ak.parse_utc_offset(text) == expected


def test_parse_utc_offset_rejects_other_text():
    with pytest.raises(ValueError):
        ak.parse_utc_offset("CET")


@pytest.mark.parametrize("text, version, style", [
    ("OpenSSH_10.0p2 Debian-7~bpo12+1, OpenSSL 3.0.19 27 Jan 2026", (10, 0), "utc"),
    ("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15", (9, 2), "utc"),
    ("OpenSSH_9.1p1", (9, 1), "utc"),
    ("sshd: unknown option -- V\nOpenSSH_8.7p1, OpenSSL 3.0.7\nusage: sshd [-46DdeGiqTtV]", (8, 7), "local"),
    ("OpenSSH_7.7p1", (7, 7), "local"),
    ("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips", (7, 4), None),
    ("Dropbear v2022.83", None, None),
])
def test_openssh_version_and_expiry_style(text, version, style):
    assert ak.openssh_version(text) == version
    assert ak.expiry_style(version) == style
