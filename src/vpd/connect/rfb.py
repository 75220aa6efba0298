"""The parts of RFB (the VNC protocol, RFC 6143) a console bridge needs: authenticate to a VM's
VNC server with its password (the browser never learns it), offer the browser a session that
needs no authentication (vpd's token already did that), force every client to share the
display, and keep a view-only client's input (keys, pointer, clipboard, resizes) away from the
guest. Pure protocol code: the caller brings the byte streams."""
from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

from ..core.errors import VpdError

VERSION = b"RFB 003.008\n"
SEC_NONE, SEC_VNC_AUTH = 1, 2


class RfbError(VpdError):
    """The VNC server or client broke the protocol, or refused us."""


# --- DES, only for the VNC challenge (RFC 6143 §7.2.2; the standard library has no DES) -------------

_IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
       64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
       61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7]
_FP = [_IP.index(i) + 1 for i in range(1, 65)]  # the inverse of IP
_E = [32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
      16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1]
_P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9,
      19, 13, 30, 6, 22, 11, 4, 25]
_PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3,
        60, 52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6,
        61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4]
_PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
        41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32]
_SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1]
_S = [
    [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
]


def _permute(value: int, table: list[int], width: int) -> int:
    """Bit i of the result (from the left) is bit table[i] (1-based, from the left) of value."""
    out = 0
    for position in table:
        out = (out << 1) | ((value >> (width - position)) & 1)
    return out


def des_encrypt_block(key: bytes, block: bytes) -> bytes:
    """DES (FIPS 46-3) of one 8-byte block."""
    k = _permute(int.from_bytes(key, "big"), _PC1, 64)
    c, d = k >> 28, k & 0xFFFFFFF
    subkeys = []
    for shift in _SHIFTS:
        c = ((c << shift) | (c >> (28 - shift))) & 0xFFFFFFF
        d = ((d << shift) | (d >> (28 - shift))) & 0xFFFFFFF
        subkeys.append(_permute((c << 28) | d, _PC2, 56))
    bits = _permute(int.from_bytes(block, "big"), _IP, 64)
    left, right = bits >> 32, bits & 0xFFFFFFFF
    for subkey in subkeys:
        x = _permute(right, _E, 32) ^ subkey
        s_out = 0
        for i in range(8):
            six = (x >> (42 - 6 * i)) & 0x3F
            s_out = (s_out << 4) | _S[i][((six & 0x20) >> 4 | (six & 1)) * 16 + ((six >> 1) & 0xF)]
        left, right = right, left ^ _permute(s_out, _P, 32)
    return _permute((right << 32) | left, _FP, 64).to_bytes(8, "big")


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """The answer to a VNC Authentication challenge: the challenge encrypted with DES under the
    password (its first 8 bytes, zero-padded), each key byte's bits mirrored, as every VNC
    server expects."""
    raw = password.encode("latin-1", errors="replace")[:8].ljust(8, b"\0")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in raw)
    return des_encrypt_block(key, challenge[:8]) + des_encrypt_block(key, challenge[8:16])


# --- the server side: authenticate to the VM's VNC server --------------------------------------

Read = Callable[[int], Awaitable[bytes]]


async def _reason(read: Read) -> str:
    length = struct.unpack(">I", await read(4))[0]
    return (await read(min(length, 4096))).decode(errors="replace")


async def server_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str | None) -> bytes:
    """Speak RFB 3.8 (or 3.7/3.3 if the server is older) up to the security result, with the
    VM's password when the server asks for one. Returns the server's version line."""
    read = reader.readexactly
    try:
        version = await read(12)
        if not version.startswith(b"RFB 003.") or not version[8:11].isdigit():
            raise RfbError(f"the display did not answer as a VNC server ({version[:12]!r})")
        minor = int(version[8:11])
        minor = 8 if minor >= 8 else 7 if minor == 7 else 3
        writer.write(b"RFB 003.%03d\n" % minor)
        if minor >= 7:
            count = (await read(1))[0]
            if count == 0:
                raise RfbError(f"the VNC server refused the connection: {await _reason(read)}")
            offered = set(await read(count))
        else:
            (chosen,) = struct.unpack(">I", await read(4))
            if chosen == 0:
                raise RfbError(f"the VNC server refused the connection: {await _reason(read)}")
            offered = {chosen}
        if SEC_NONE in offered:
            choice = SEC_NONE
        elif SEC_VNC_AUTH in offered:
            if password is None:
                raise RfbError("the VNC server asks for a password and the VM's definition has none")
            choice = SEC_VNC_AUTH
        else:
            raise RfbError(f"the VNC server offers only security types {sorted(offered)}; "
                           "vpd speaks None (1) and VNC Authentication (2)")
        if minor >= 7:
            writer.write(bytes([choice]))
        if choice == SEC_VNC_AUTH:
            writer.write(vnc_auth_response(password or "", await read(16)))
        await writer.drain()
        if choice == SEC_VNC_AUTH or minor >= 8:
            (result,) = struct.unpack(">I", await read(4))
            if result != 0:
                why = await _reason(read) if minor >= 8 else "authentication failed"
                raise RfbError(f"the VNC server refused vpd's authentication: {why}")
    except asyncio.IncompleteReadError:
        raise RfbError("the VNC server closed the connection during the handshake") from None
    return version


# --- the browser side: a session without authentication, then the viewer's filter ---------------

# Client-to-server messages (RFC 6143 §7.5 and the registered extensions noVNC sends), by type:
# (fixed length, where to read a count, bytes per counted item, whether a view-only client may
# send it). Input, clipboard and resizing the guest's screen are for operators only.
_FIXED = {0: 20, 3: 10, 4: 8, 5: 6, 150: 10}
_VIEW_ONLY_ALLOWED = {0, 2, 3, 150, 248}  # pixel format, encodings, update requests, fences


class ViewOnlyFilter:
    """Parses a client's RFB messages after ClientInit and keeps only those that ask for the
    picture. An unknown message cannot be skipped (its length is unknown): RfbError."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.dropped = 0

    def _length(self) -> int | None:
        buf, kind = self._buf, self._buf[0]
        if kind in _FIXED:
            return _FIXED[kind]
        if kind == 2 and len(buf) >= 4:  # SetEncodings: u16 count of s32
            return 4 + 4 * struct.unpack(">H", buf[2:4])[0]
        if kind == 6 and len(buf) >= 8:  # ClientCutText: u32 length (negative: extended clipboard)
            return 8 + abs(struct.unpack(">i", buf[4:8])[0])
        if kind == 248 and len(buf) >= 9:  # ClientFence: flags, u8 length, payload
            return 9 + buf[8]
        if kind == 251 and len(buf) >= 8:  # SetDesktopSize: u8 screens of 16 bytes
            return 8 + 16 * buf[6]
        if kind == 255:  # QEMU's: u8 subtype; 0 extended key event, 1 audio (u16 operation)
            if len(buf) < 2 or (buf[1] == 1 and len(buf) < 4):
                return None
            if buf[1] == 0:
                return 12
            if buf[1] == 1:
                return 10 if struct.unpack(">H", buf[2:4])[0] == 2 else 4
        elif kind in (2, 6, 248, 251):
            return None  # the header that gives the length is not complete yet
        raise RfbError(f"a view-only client sent an RFB message of unknown type {kind}: closing")

    def feed(self, data: bytes) -> bytes:
        """The bytes of `data` (with what was kept from before) to pass on."""
        self._buf += data
        out = bytearray()
        while self._buf:
            length = self._length()
            if length is None or len(self._buf) < length:
                break
            message = bytes(self._buf[:length])
            del self._buf[:length]
            if message[0] in _VIEW_ONLY_ALLOWED:
                out += message
            else:
                self.dropped += 1
        return bytes(out)


def client_greeting() -> bytes:
    """What the bridge says first to the browser: its version (3.8)."""
    return VERSION


def client_security(client_version: bytes) -> bytes:
    """After the browser's version: offer it the one security type None (the bridge already
    authenticated to the VM's server)."""
    if not client_version.startswith(b"RFB 003.") or client_version[8:11] not in (b"007", b"008"):
        raise RfbError(f"the browser speaks {client_version[:12]!r}: the console needs RFB 3.7 or 3.8")
    return bytes([1, SEC_NONE])


def client_security_result(choice: bytes, client_version: bytes) -> bytes:
    if choice != bytes([SEC_NONE]):
        raise RfbError(f"the browser chose security type {choice!r}, not None")
    return b"\0\0\0\0" if client_version[8:11] == b"008" else b""


# ClientInit as the bridge forwards it, whatever the browser asked: shared. A browser console never
# disconnects the VM's other viewers (a non-shared client makes the server drop the others).
SHARED_CLIENT_INIT = b"\x01"
