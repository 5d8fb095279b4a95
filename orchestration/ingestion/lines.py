"""Split a landing file (plain or gzip) into numbered lines without a Python loop per line.

The bytes are decompressed in C (zlib), newline positions are found with numpy, and the lines become
an Arrow binary array that points into the same buffer (no copy). Validation (UTF-8, JSON, fields)
happens afterwards in DuckDB, set-based.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 8 << 20


@dataclass(frozen=True)
class Lines:
    """Numbered lines of one landing file.

    ``table`` has ``line_no`` (1-based), ``raw`` (bytes, trailing newline included) and
    ``raw_bytes`` (the line's length without its newline).
    ``error`` says why a gzip stream ended early (the file is then truncated: its last line is cut).
    """

    table: pa.Table
    error: str | None = None

    @property
    def truncated(self) -> bool:
        return self.error is not None


def read_lines(path: Path) -> Lines:
    with path.open("rb") as fh:
        is_gzip = fh.read(2) == GZIP_MAGIC
    error = None
    if is_gzip:
        data, error = _gunzip(path)
    else:
        data = path.read_bytes()
    return Lines(table=split_lines(data), error=error)


def _gunzip(path: Path) -> tuple[bytes, str | None]:
    """Decompress all members; on damage, salvage what precedes it and say why."""
    try:
        return gzip.decompress(path.read_bytes()), None  # the common case, in one C call
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return _gunzip_salvaging(path)


def _gunzip_salvaging(path: Path) -> tuple[bytes, str | None]:
    """Stream member by member, keeping every byte before a cut (the usual damage: an upload that stopped)."""
    out = bytearray()
    fed_current_member = False
    decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            while chunk:
                fed_current_member = True
                try:
                    out += decomp.decompress(chunk)
                except zlib.error as exc:
                    return bytes(out), f"corrupt gzip stream ({exc})"
                if not decomp.eof:
                    break
                chunk = decomp.unused_data
                decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                fed_current_member = False
    if fed_current_member and not decomp.eof:
        out += decomp.flush()
        return bytes(out), "gzip stream ends before its end marker (file truncated)"
    return bytes(out), None


def split_lines(data: bytes) -> pa.Table:
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10) + 1
    if len(data) and data[-1] != 10:
        ends = np.append(ends, len(data))  # last line without a newline still counts
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), ends.astype(np.int64)])
    n = len(offsets) - 1
    raw = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    # Length of each line without its newline: the size limit is about the payload.
    raw_bytes = np.diff(offsets) - (buf[ends - 1] == 10) if n else np.zeros(0, dtype=np.int64)
    return pa.table(
        {
            "line_no": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "raw": raw,
            "raw_bytes": pa.array(raw_bytes.astype(np.int64)),
        }
    )
