"""Split a landing file (plain or gzip) into numbered lines without a Python loop per line.

The bytes are decompressed in C (ISA-L through python-isal's ``isal_zlib``, zlib's API at about twice its
speed, releasing the GIL like zlib), newline positions are found with numpy, and the lines become
an Arrow binary array that points into the same buffer (no copy). Validation (UTF-8, JSON, fields)
happens afterwards in DuckDB, set-based.

``LineStream`` does this in bounded memory: it decompresses a piece at a time and yields Arrow
batches of whole lines (about ``batch_bytes`` each), numbered across the whole file; a line too long
to be a record is never held whole (``LongLine``). A damaged gzip
file keeps every line before the damage; its last, cut line (or an empty line standing for the lost
tail, when the cut fell on a line boundary) carries ``cut_reason``.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pyarrow as pa
from isal import isal_zlib as zlib

GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 8 << 20


LINE_SCHEMA = pa.schema([
    ("line_no", pa.int64()), ("raw", pa.large_binary()), ("raw_bytes", pa.int64()), ("cut_reason", pa.string()),
])
BATCH_BYTES = 8 << 20  # decompressed bytes per batch of lines


class LineStream:
    """Numbered lines of one landing file, as a stream of Arrow batches (``LINE_SCHEMA``).

    Iterate it (or ``reader()``) once; afterwards ``lines_read`` is the file's line count, ``error`` why
    the gzip stream ended early (or None) and ``records`` the number of line records yielded (one more
    than ``lines_read`` when an empty line stands for a tail lost at a line boundary).

    Memory is bounded by bytes, whatever the lines: a batch holds the whole lines of one decompressed
    piece of at most ``batch_bytes`` (plus the line the piece finishes), and a line longer than
    ``long_line_bytes`` is never held whole (see ``LongLine``): it comes as a batch of its own whose
    ``raw_bytes`` is the line's true length.
    """

    def __init__(self, path: Path, batch_bytes: int = BATCH_BYTES, long_line_bytes: int | None = None,
                 keep_chars: int = 0):
        self.path = path
        self.batch_bytes = batch_bytes
        self.long_line_bytes = long_line_bytes
        self.keep_chars = keep_chars
        self.lines_read = 0
        self.records = 0
        self.error: str | None = None
        self.done = False

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(LINE_SCHEMA, iter(self))

    def __iter__(self):
        parts: list[bytes] = []  # the unfinished line at the end of the bytes seen so far, in pieces
        held = 0  # its length
        long: LongLine | None = None  # the unfinished line, once it is longer than long_line_bytes
        for piece in self._pieces():
            if long is not None:
                newline = piece.find(b"\n")
                if newline < 0:
                    long.add(piece)
                    continue
                long.add(piece[:newline])
                yield self._long_batch(long)
                self.lines_read += 1
                long = None
                piece = piece[newline + 1:]
            end = piece.rfind(b"\n") + 1
            if end:
                data = piece[:end] if end < len(piece) else piece
                if parts:
                    data = b"".join([*parts, data])  # one copy, however many pieces the line spanned
                    parts, held = [], 0
                yield self._batch(data)
            if end < len(piece):
                parts.append(piece[end:])
                held += len(piece) - end
                if self.long_line_bytes is not None and held > self.long_line_bytes:
                    long = LongLine(b"".join(parts), self.keep_chars)
                    parts, held = [], 0
        carry = b"".join(parts)
        if self.error is not None:
            # The cut line, or an empty line for the lost tail when the cut fell on a line boundary.
            self.lines_read += bool(carry) or long is not None
            yield (self._long_batch(long, cut_reason=self.error) if long is not None
                   else self._batch(carry, cut_reason=self.error, count=1))
        elif long is not None or carry:  # a last line without a newline still counts
            self.lines_read += 1
            yield self._long_batch(long) if long is not None else self._batch(carry, count=1)
        self.done = True

    def _long_batch(self, long: LongLine, cut_reason: str | None = None) -> pa.RecordBatch:
        batch = self._batch(long.stand_in(), cut_reason=cut_reason, count=1)
        return batch.set_column(2, "raw_bytes", pa.array([long.length], pa.int64()))

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


class LongLine:
    """A line too long to be a record, read without holding it: its length, whether it is UTF-8, and a
    stand-in for its text.

    Such a line can only be rejected, and what the queries read of a rejected line's text is
    ``left(rtrim(text, CR/LF), keep_chars)`` (and whether it decodes). The stand-in gives exactly that:
    the line's first ``keep_chars`` characters, followed by one more character when the line goes on
    with anything but carriage returns (so that trimming the stand-in trims what trimming the line
    would); or a byte that is not UTF-8 when the line is not UTF-8.
    """

    def __init__(self, head: bytes, keep_chars: int):
        self.keep_chars = keep_chars
        self.length = 0
        self.valid = True
        self.kept: list[str] = []  # the first keep_chars characters
        self.kept_chars = 0
        self.goes_on = False  # a character other than CR after them
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.add(head)

    def add(self, data: bytes) -> None:
        self.length += len(data)
        if not self.valid:
            return
        try:
            text = self.decoder.decode(data)
        except UnicodeDecodeError:
            self.valid = False
            self.kept = []
            return
        if self.kept_chars < self.keep_chars:
            head = text[: self.keep_chars - self.kept_chars]
            self.kept.append(head)
            self.kept_chars += len(head)
            text = text[len(head):]
        if not self.goes_on and text.count("\r") < len(text):
            self.goes_on = True

    def stand_in(self) -> bytes:
        if self.valid:
            try:
                self.decoder.decode(b"", final=True)  # a line may not end inside a character
            except UnicodeDecodeError:
                self.valid = False
        if not self.valid:
            return b"\xff"
        return ("".join(self.kept) + ("x" if self.goes_on else "")).encode()


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
