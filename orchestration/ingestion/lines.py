"""Split a landing file (plain or gzip) into numbered lines without a Python loop per line.

The bytes are decompressed in C (zlib), newline positions are found with numpy, and the lines become
an Arrow binary array that points into the same buffer (no copy). Validation (UTF-8, JSON, fields)
happens afterwards in DuckDB, set-based.

``LineStream`` does the same in bounded memory: it decompresses a piece at a time and yields Arrow
batches of whole lines (about ``batch_bytes`` each), numbered across the whole file. A damaged gzip
file keeps every line before the damage; its last, cut line (or an empty line standing for the lost
tail, when the cut fell on a line boundary) carries ``cut_reason``.
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


LINE_SCHEMA = pa.schema([
    ("line_no", pa.int64()), ("raw", pa.large_binary()), ("raw_bytes", pa.int64()), ("cut_reason", pa.string()),
])
BATCH_BYTES = 8 << 20  # decompressed bytes per batch of lines


class LineStream:
    """Numbered lines of one landing file, as a stream of Arrow batches (``LINE_SCHEMA``).

    Iterate it (or ``reader()``) once; afterwards ``lines_read`` is the file's line count, ``error`` why
    the gzip stream ended early (or None) and ``records`` the number of line records yielded (one more
    than ``lines_read`` when an empty line stands for a tail lost at a line boundary).
    """

    def __init__(self, path: Path, batch_bytes: int = BATCH_BYTES):
        self.path = path
        self.batch_bytes = batch_bytes
        self.lines_read = 0
        self.records = 0
        self.error: str | None = None
        self.done = False

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(LINE_SCHEMA, iter(self))

    def __iter__(self):
        carry = b""  # the unfinished line at the end of the bytes seen so far
        for piece in self._pieces():
            data = carry + piece if carry else piece
            end = data.rfind(b"\n") + 1
            carry = data[end:]
            if end:
                yield self._batch(data[:end] if end < len(data) else data)
        if self.error is not None:
            # The cut line, or an empty line for the lost tail when the cut fell on a line boundary.
            self.lines_read += bool(carry)
            yield self._batch(carry, cut_reason=self.error, count=1)
        elif carry:
            yield self._batch(carry, count=1)  # a last line without a newline still counts
        self.done = True

    def _batch(self, data: bytes, cut_reason: str | None = None, count: int | None = None) -> pa.RecordBatch:
        if count is None:
            table = split_lines(data)
        else:  # exactly one line, newline or not
            table = pa.table({"line_no": pa.array([1], pa.int64()), "raw": pa.array([data], pa.large_binary()),
                              "raw_bytes": pa.array([len(data)], pa.int64())})
        n = table.num_rows
        first = self.records
        if count is None:
            self.lines_read += n
        self.records += n
        return pa.record_batch([
            pa.array(np.arange(first + 1, first + n + 1, dtype=np.int64)),
            table.column("raw").combine_chunks(),
            table.column("raw_bytes").combine_chunks(),
            pa.array([cut_reason] * n, pa.string()) if cut_reason else pa.nulls(n, pa.string()),
        ], schema=LINE_SCHEMA)

    def _pieces(self):
        """Decompressed pieces of at most ``batch_bytes``; sets ``error`` when the gzip stream is damaged."""
        with self.path.open("rb") as fh:
            is_gzip = fh.read(2) == GZIP_MAGIC
            fh.seek(0)
            if not is_gzip:
                while piece := fh.read(self.batch_bytes):
                    yield piece
                return
            decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            fed_current_member = False
            while chunk := fh.read(READ_CHUNK):
                while chunk:
                    fed_current_member = True
                    try:
                        piece = decomp.decompress(chunk, self.batch_bytes)
                    except zlib.error as exc:
                        self.error = f"corrupt gzip stream ({exc})"
                        return
                    if piece:
                        yield piece
                    if decomp.unconsumed_tail:
                        chunk = decomp.unconsumed_tail
                        continue
                    if not decomp.eof:
                        break
                    chunk = decomp.unused_data  # the next gzip member, if any
                    decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                    fed_current_member = False
            if fed_current_member and not decomp.eof:
                if tail := decomp.flush():
                    yield tail
                self.error = "gzip stream ends before its end marker (file truncated)"


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
