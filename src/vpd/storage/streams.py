"""Volume contents as byte streams through libvirt (what `virsh vol-download/vol-upload` use),
so copies to and from a host work the same for remote hosts. On success the stream is
finished; on any failure (Ctrl-C too) it is aborted and a partial local file removed."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import libvirt

Progress = Callable[[int], None]

_STREAM_CHUNK = 4 * 1024 * 1024


@contextmanager
def _finished_or_aborted(stream: libvirt.virStream) -> Iterator[libvirt.virStream]:
    try:
        yield stream
        stream.finish()
    except BaseException:
        try:
            stream.abort()
        except libvirt.libvirtError:
            pass
        raise

def download_volume(vol: libvirt.virStorageVol, target: Path, progress: Progress | None = None) -> None:
    """The volume's file, holes kept (a sparse raw disk stays sparse)."""
    stream = vol.connect().newStream(0)
    vol.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
    done = 0
    try:
        with _finished_or_aborted(stream), open(target, "wb") as f:
            def data(_stream, chunk: bytes, _opaque) -> int:
                nonlocal done
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done)
                return len(chunk)

            def hole(_stream, length: int, _opaque) -> int:
                nonlocal done
                f.seek(length, os.SEEK_CUR)
                done += length
                return 0

            stream.sparseRecvAll(data, hole, None)
            f.truncate(f.tell())
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def upload_volume(vol: libvirt.virStorageVol, source: Path, progress: Progress | None = None) -> None:
    """Write `source`'s bytes into the volume from its start."""
    size = source.stat().st_size
    stream = vol.connect().newStream(0)
    vol.upload(stream, 0, size, 0)
    done = 0
    with _finished_or_aborted(stream), open(source, "rb") as f:
        def read(_stream, nbytes: int, _opaque) -> bytes:
            nonlocal done
            chunk = f.read(min(nbytes, _STREAM_CHUNK))
            done += len(chunk)
            if progress:
                progress(done)
            return chunk

        stream.sendAll(read, None)
