"""Append-only writer of record frames (docs/records.md §3).

The file is created atomically (written under a temporary name, synced, then linked to its
final name), and afterwards only ever appended to, one whole frame per write. A write that
fails midway (disk full, an interrupt outside the guarded section) is cut back to the last
whole frame, so the file never holds a torn frame followed by more data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.errors import ConfigurationError
from lumina_hal.runs.interrupts import InterruptGuard
from lumina_hal.runs.record_format import encode_frame_parts

log = logging.getLogger(__name__)

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """Write ``parts`` in order: one ``writev`` normally, finishing a short write by hand."""
    total = sum(memoryview(p).nbytes for p in parts)
    done = os.writev(fd, parts) if hasattr(os, "writev") else 0
    if done == total:
        return
    rest = memoryview(b"".join(parts))[done:]
    while rest:
        rest = rest[os.write(fd, rest) :]


class FrameWriter:
    """An open record file: ``append`` whole frames, ``close`` syncs and closes."""

    def __init__(self, fd: int, path: Path, n_frames: int, guard: InterruptGuard) -> None:
        self._fd = fd
        self.path = path
        self._seq = n_frames
        self._size = os.fstat(fd).st_size
        self._guard = guard

    @classmethod
    def create(
        cls,
        target: Path,
        initial: bytes,
        n_frames: int,
        overwrite: bool,
        guard: InterruptGuard,
    ) -> FrameWriter:
        """Write ``initial`` (file header and first frames) and give it the name ``target``."""
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = -1
        try:
            fd = os.open(tmp, _FLAGS, 0o666)
            _write_all(fd, [initial])
            os.fsync(fd)
            _publish(tmp, target, overwrite)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            if isinstance(exc, FileExistsError):
                raise ConfigurationError(
                    f"record file {str(target)!r} already exists; choose another name or "
                    "allow overwriting (overwrite=True, CLI --overwrite)"
                ) from None
            if isinstance(exc, OSError):
                raise ConfigurationError(
                    f"cannot create record file {str(target)!r}: {exc}"
                ) from None
            raise
        return cls(fd, target, n_frames, guard)

    def append(self, frames: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]]) -> None:
        """Encode ``frames`` (fields, arrays) with the next sequence numbers; one write."""
        parts = [
            part
            for i, (fields, arrays) in enumerate(frames)
            for part in encode_frame_parts(self._seq + i, fields, arrays)
        ]
        size = sum(memoryview(p).nbytes for p in parts)
        with self._guard.critical():
            start = self._size
            try:
                _write_all(self._fd, parts)
                self._seq += len(frames)
                self._size = start + size
            except BaseException:
                self._cut_back(start)
                raise

    def close(self) -> None:
        """Sync to disk and close (idempotent)."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            os.fsync(fd)
        except OSError as exc:
            log.warning("fsync of record %s failed: %s", self.path, exc)
        finally:
            os.close(fd)

    def _cut_back(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            os.lseek(self._fd, size, os.SEEK_SET)
        except OSError as exc:
            log.error("record %s: could not cut a failed write back: %s", self.path, exc)


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Give ``tmp`` the name ``target``: atomically, and never over a file unless asked."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails with FileExistsError if target exists: check + create
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if target.exists():
            raise FileExistsError(str(target)) from None
        os.replace(tmp, target)
        return
    tmp.unlink()
