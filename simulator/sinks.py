"""Per-source layout of the landing zone: which records go to which dt folder and file, the
duplicate deliveries, and where malformed input is planted.

Records are buffered by arrival day; a day's folder is written once no later generation day can
deliver into it (everything generated on day d arrives on day d or later).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl
import pyarrow as pa

from . import ids, malformed, planted
from .landing import GZIP_LEVEL, Landing, lines_to_bytes
from .malformed import BadEvents, MalformedPlan
from .ops import KEYS, OpsExtracts, Telemetry
from .otlp import render_lines
from .parts import draw_part_usage
from .truth import TruthRecorder, day_name
from .world import DAY_US, US, World

TRUNCATED_FILE_LINES = 60
NEAR_COPY_WINDOW_US = 30 * US


def _compact(df: pl.DataFrame) -> pl.DataFrame:
    """A copy that owns its strings. A filtered polars frame can keep the whole day's string
    buffers alive through views; frames held for a later day are rebuilt so memory stays bounded."""
    return df.with_columns([pl.Series(name, df[name].to_list(), dtype=pl.String)
                            for name, dtype in df.schema.items() if dtype == pl.String])


def _insert(lines: list[bytes], bad: list[tuple[bytes, str, str]], rng) -> list[tuple[int, str, str]]:
    """Insert bad lines at random places; returns their 1-based line numbers, reasons and notes."""
    marked = [(line, None) for line in lines]
    for b in bad:
        pos = int(rng.integers(0, len(marked) + 1))
        marked.insert(pos, (b[0], b))
    lines[:] = [m[0] for m in marked]
    return [(i + 1, b[1], b[2]) for i, (_line, b) in enumerate(marked) if b is not None]


class EventSink:
    SCHEMA = {"line": pl.String, "mid": pl.String, "key": pl.Int64, "gid": pl.Int64, "protected": pl.Boolean,
              "copy": pl.Boolean, "skew": pl.Int64, "true_us": pl.Int64}

    def __init__(self, world: World, landing: Landing, plan: MalformedPlan, truth: TruthRecorder, per_file: int):
        self.w, self.landing, self.plan, self.truth, self.per_file = world, landing, plan, truth, per_file
        self.pending: dict[int, list[pl.DataFrame]] = defaultdict(list)
        self.copies = {"same_place": 0, "elsewhere_same_day": 0, "next_day_folder": 0}
        self.lines_written = 0

    def add(self, frame: pl.DataFrame, dt_index: np.ndarray, today: int) -> None:
        for d in np.unique(dt_index):
            part = frame.filter(pl.Series(dt_index == d))
            self.pending[int(d)].append(part if d == today else _compact(part))

    def flush(self, d: int) -> None:
        frames = self.pending.pop(d, [])
        df = pl.concat(frames) if frames else pl.DataFrame(schema=self.SCHEMA)
        df = df.sort(["key", "gid", "copy"])
        rng = ids.rng_for(self.w.seed, ids.FLUSH_EVENTS, d)
        folder = f"events/dt={day_name(self.w, d)}"

        truncated = None
        if self.plan.enabled and d == self.plan.events_truncated_day:
            eligible = np.flatnonzero(~df["protected"].to_numpy() & ~df["copy"].to_numpy())[-TRUNCATED_FILE_LINES:]
            if len(eligible) >= 3:
                mask = np.zeros(len(df), dtype=bool)
                mask[eligible] = True
                truncated = df.filter(pl.Series(mask))
                df = df.filter(pl.Series(~mask))

        # Duplicate deliveries: the same line again, nearby, elsewhere in the day, or in the next day's folder.
        n = len(df)
        original = ~df["copy"].to_numpy()
        pick = original & (rng.random(n) < planted.DUPLICATE_SHARE)
        r = rng.random(n)
        next_day = pick & (r < planted.DUPLICATE_NEXT_DAY_SHARE) & (d + 1 < self.w.days)
        elsewhere = pick & ~next_day & (r < planted.DUPLICATE_NEXT_DAY_SHARE + planted.DUPLICATE_OTHER_FILE_SHARE)
        near = pick & ~next_day & ~elsewhere
        day0 = self.w.day_start(d)
        key = df["key"].to_numpy()
        new_key = np.where(elsewhere, day0 + (rng.random(n) * DAY_US).astype(np.int64),
                           key + (rng.random(n) * NEAR_COPY_WINDOW_US).astype(np.int64))
        here = df.with_columns(key=pl.Series(new_key), copy=pl.lit(True)).filter(pl.Series(near | elsewhere))
        later_key = self.w.day_start(d + 1) + (rng.random(n) * DAY_US).astype(np.int64)
        later = df.with_columns(key=pl.Series(later_key), copy=pl.lit(True)).filter(pl.Series(next_day))
        if len(later):
            self.pending[d + 1].append(_compact(later))
        self.copies["same_place"] += int(near.sum())
        self.copies["elsewhere_same_day"] += int(elsewhere.sum())
        self.copies["next_day_folder"] += int(next_day.sum())
        df = pl.concat([df, here]).sort(["key", "gid", "copy"])

        # Files of at most per_file lines.
        n = len(df)
        n_files = max(1, -(-n // self.per_file)) if n else 0
        mixed_file = int(rng.integers(0, n_files)) if n_files else 0
        mixed = self.plan.enabled and d in self.plan.events_mixed_days
        if mixed and n_files == 0:
            n_files = 1
        for f in range(n_files):
            part = df.slice(f * self.per_file, self.per_file)
            rel = f"{folder}/segment-s3-{f:04d}.jsonl.gz"
            if mixed and f == mixed_file:
                lines = [x.encode() for x in part["line"].to_list()]
                bad = BadEvents(self.w, d, 1).lines(malformed.EVENTS_MIXED)
                for line_no, reason, note in _insert(lines, bad, rng):
                    self.plan.add("events", rel, reason, line_no, note=note)
                data = b"".join(x + b"\n" for x in lines)
            else:
                data = lines_to_bytes(part["line"])
            self.landing.write_gzip("events", rel, data)
            self.truth.file("events")
        self.truth.good_lines("events", df["gid"].to_numpy(), len(df))
        self.lines_written += len(df)
        self._skew_sample(df)

        number = n_files
        if self.plan.enabled and d == self.plan.events_bad_file_day:
            rel = f"{folder}/segment-s3-{number:04d}.jsonl.gz"
            bad = BadEvents(self.w, d, 2).lines(malformed.EVENTS_BAD_FILE)
            for i, (_line, reason, note) in enumerate(bad):
                self.plan.add("events", rel, reason, i + 1, note=note)
            self.landing.write_gzip("events", rel, b"".join(b[0] + b"\n" for b in bad))
            self.truth.file("events")
            number += 1
        if truncated is not None:
            rel = f"{folder}/segment-s3-{number:04d}.jsonl.gz"
            lines = [x.encode() for x in truncated["line"].to_list()]
            data, complete, decodable = malformed.truncate_gzip(lines, GZIP_LEVEL)
            self.landing.write_raw("events", rel, data)
            self.truth.file("events")
            loaded = truncated.head(complete)
            self.truth.good_lines("events", loaded["gid"].to_numpy(), complete)
            self.lines_written += complete
            self._skew_sample(loaded)
            self.plan.add("events", rel, "truncated_file", complete + 1, note="gzip stream ends inside this line")
            self.plan.truncated_files.append({
                "source": "events", "path": rel, "complete_lines": complete, "cut_line_no": complete + 1,
                "lines_before_truncation": len(lines), "lines_lost_after_cut": len(lines) - complete - 1,
                "decodable_bytes": decodable,
            })

    def _skew_sample(self, df: pl.DataFrame) -> None:
        skewed = df.filter((pl.col("skew") != 0) & ~pl.col("copy"))
        if len(skewed):
            self.truth.skewed(skewed["mid"].to_list(), skewed["true_us"].to_numpy(), skewed["skew"].to_numpy())


class CrashSink:
    def __init__(self, world: World, landing: Landing, plan: MalformedPlan, truth: TruthRecorder, per_file: int):
        self.w, self.landing, self.plan, self.truth, self.per_file = world, landing, plan, truth, per_file
        self.pending: dict[int, list[tuple]] = defaultdict(list)

    def add(self, batch) -> None:
        dt_index = (batch.arrival_us - self.w.start_us) // DAY_US
        for i in range(len(batch.lines)):
            self.pending[int(dt_index[i])].append((int(batch.arrival_us[i]), int(batch.session_gid[i]), batch.lines[i],
                                                   int(batch.group[i]), int(batch.app[i]), int(batch.version[i]), int(batch.crash_us[i])))

    def flush(self, d: int) -> None:
        rows = sorted(self.pending.pop(d, []))
        rng = ids.rng_for(self.w.seed, ids.MALFORMED, d, 21)
        mixed = self.plan.enabled and d == self.plan.crashes_day
        n_files = -(-len(rows) // self.per_file)
        if mixed and n_files == 0:
            n_files = 1
        folder = f"crashes/dt={day_name(self.w, d)}"
        for f in range(n_files):
            part = rows[f * self.per_file:(f + 1) * self.per_file]
            rel = f"{folder}/sentry-events-{f:04d}.jsonl.gz"
            lines = [r[2].encode() for r in part]
            if mixed and f == 0:
                for line_no, reason, note in _insert(lines, malformed.bad_crash_lines(self.w, d), rng):
                    self.plan.add("crashes", rel, reason, line_no, note=note)
            self.landing.write_gzip("crashes", rel, b"".join(x + b"\n" for x in lines))
            self.truth.file("crashes")
        self.truth.good_lines("crashes", None, len(rows))
        if rows:
            self.truth.crash_lines([r[3] for r in rows], [r[4] for r in rows], [r[5] for r in rows], [r[6] for r in rows])


class TraceSink:
    def __init__(self, world: World, landing: Landing, plan: MalformedPlan, truth: TruthRecorder, per_file: int):
        self.w, self.landing, self.plan, self.truth = world, landing, plan, truth
        self.lines_per_file = max(1, per_file // 40)  # ~40 spans a line: about per_file spans a file
        self.pending: dict[int, list[pl.DataFrame]] = defaultdict(list)
        self.seq = 0

    def add(self, batch, today: int) -> None:
        frame = batch.frame.with_columns(
            seq=pl.Series(np.arange(self.seq, self.seq + len(batch.frame), dtype=np.int64)),
            route=pl.Series(batch.route), version=pl.Series(batch.version), app=pl.Series(batch.app),
            duration_ns=pl.Series(batch.client_duration_ns),
        )
        self.seq += len(frame)
        for (d,), part in frame.partition_by("dt", as_dict=True, maintain_order=True).items():
            self.pending[int(d)].append(part if d == today else _compact(part))

    def flush(self, d: int) -> None:
        frames = self.pending.pop(d, [])
        if frames:
            df = pl.concat(frames).sort(["start_ns", "seq"])
            lines, spans = render_lines(self.w, d, df)
            self.truth.traces(df["route"].to_numpy(), df["version"].to_numpy(), df["app"].to_numpy(), df["duration_ns"].to_numpy())
        else:
            lines, spans = [], []
        mixed = self.plan.enabled and d == self.plan.traces_day
        rng = ids.rng_for(self.w.seed, ids.MALFORMED, d, 31)
        n_files = -(-len(lines) // self.lines_per_file)
        if mixed and n_files == 0:
            n_files = 1
        folder = f"traces/dt={day_name(self.w, d)}"
        for f in range(n_files):
            part = [x.encode() for x in lines[f * self.lines_per_file:(f + 1) * self.lines_per_file]]
            rel = f"{folder}/otlp-file-exporter-{f:04d}.jsonl.gz"
            if mixed and f == 0:
                if part:  # one span without traceId, first in a line
                    k = int(rng.integers(0, len(part)))
                    part[k] = part[k].replace(b'"spans": [', b'"spans": [' + malformed.bad_trace_span(self.w, d).encode() + b", ", 1)
                for line_no, reason, note in _insert(part, list(malformed.BAD_TRACE_LINES), rng):
                    self.plan.add("traces", rel, reason, line_no, note=note)
                if any(b'"spans": [{"spanId"' in x for x in part):
                    line_no = next(i for i, x in enumerate(part) if b'"spans": [{"spanId"' in x) + 1
                    self.plan.add("traces", rel, "missing_field", line_no, record_index=0, note="span without traceId")
            self.landing.write_gzip("traces", rel, b"".join(x + b"\n" for x in part))
            self.truth.file("traces")
        self.truth.good_lines("traces", None, int(sum(spans)))


class OpsSink:
    def __init__(self, world: World, jobs, landing: Landing, plan: MalformedPlan, truth: TruthRecorder, per_file: int):
        self.w, self.landing, self.plan, self.truth, self.per_file = world, landing, plan, truth, per_file
        self.telemetry = Telemetry(world, jobs)
        self.part_usage = draw_part_usage(world, jobs, self.telemetry.battery_on_day, self.telemetry.vehicle_age,
                                          self.telemetry.electric)
        self.extracts = OpsExtracts(world, jobs, self.part_usage)
        self.templates: dict[str, pa.Table] = {}

    def _null_key_rows(self, name: str, table: pa.Table | None, key: str, count: int) -> pa.Table:
        """Rows like a real one but with the key null."""
        template = table.slice(0, 1) if table is not None and table.num_rows else self.templates[name]
        rows = pa.concat_tables([template] * count)
        i = rows.schema.get_field_index(key)
        return rows.set_column(i, rows.schema.field(key), pa.nulls(count, type=pa.string()))

    def _write(self, source: str, name: str, folder: str, table: pa.Table, null_rows: int = 0, key: str = "") -> int:
        """Write a table in files of per_file rows; null-key rows go at the end of the last file."""
        if null_rows:
            table = pa.concat_tables([table, self._null_key_rows(name, table, key, null_rows)])
        n_files = max(1, -(-table.num_rows // self.per_file))
        for f in range(n_files):
            part = table.slice(f * self.per_file, self.per_file)
            rel = f"{folder}/{name}-{f:04d}.parquet"
            self.landing.write_parquet(source, rel, part)
            self.truth.file(source)
            if null_rows and f == n_files - 1:
                for k in range(null_rows):
                    self.plan.add(source, rel, "missing_field", part.num_rows - null_rows + k + 1, note=f"{key} is null (row number)")
        self.truth.good_lines(source, None, table.num_rows - null_rows)
        return n_files

    def day(self, d: int) -> None:
        date = day_name(self.w, d)
        tables = self.extracts.day(d)
        tel = self.telemetry.day(d)
        if d == 0:
            self.templates = {name: t.slice(0, 1) for name, t in tables.items()}
            self.templates["telemetry"] = tel.slice(0, 1)
        planting = self.plan.enabled
        null_day = planting and d == self.plan.ops_null_key_day
        for name in KEYS:
            nulls = {"customers": 2, "jobs": 1}.get(name, 0) if null_day else 0
            table = tables.get(name)
            source, folder = f"ops/{name}", f"ops/{name}/dt={date}"
            n_files = 0
            if table is not None or nulls:
                table = table if table is not None else self.templates[name].slice(0, 0)
                n_files = self._write(source, name, folder, table, nulls, KEYS[name])
            if planting and d == self.plan.ops_unreadable_day and name == "jobs":
                rel = f"{folder}/jobs-{n_files:04d}.parquet"
                self.landing.write_raw(source, rel, malformed.UNREADABLE_PARQUET)
                self.truth.file(source)
                self.plan.add(source, rel, "unreadable_file", None, note="an S3 error document saved as the object")
        nulls = 2 if planting and d == self.plan.telemetry_null_key_day and self.templates["telemetry"].num_rows else 0
        if tel.num_rows or nulls:
            self._write("telemetry", "telemetry", f"telemetry/dt={date}", tel, nulls, "vin")
