"""A trace's spans as a tree: the root, the waterfall order, and the critical path.

Plain functions over plain values (no Streamlit, no DuckDB), so the Trace Explorer page stays a layout
and the rules here are tested on hand-made span trees.

The critical path (as Jaeger's trace view defines it) is the chain of work the root's end waited on.
Walk backwards from the root's end: the parent's child that ends last is what the parent was waiting for;
the time between that child's end and the parent's end is the parent's own work. Descend into that child
the same way, then continue in the parent from the child's start: the next critical child is the one that
ends last before that start (children running in parallel with a critical child, and ending after its
start, are not critical: the parent would have waited anyway). Where no child covers a stretch (a gap),
the parent's own time is on the path. The result is a list of segments (span, from, to) that tile the
root's interval exactly: every instant of the trace is blamed on exactly one span.

Clocks disagree between a phone and a server, so a child may start before or end after its parent.
Children are clipped to their parent's interval first (what is outside cannot have delayed the parent);
a child entirely outside contributes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_span_id: str | None
    start: float  # ms, any common origin
    end: float


@dataclass(frozen=True)
class Segment:
    """A stretch of the critical path and the span whose own work it is."""

    span_id: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def children_by_parent(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Each span's children, among spans whose parent is in the trace (a span is never its own child)."""
    spans = list(spans)
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        if span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
    return children


def find_root(spans: Sequence[Span]) -> Span | None:
    """The trace's root: a span without a parent, else (the root was not received) a span whose parent is
    missing; among several, the longest, then the earliest. None for no spans."""
    ids = {s.span_id for s in spans}
    true_roots = [s for s in spans if not s.parent_span_id]
    orphans = [s for s in spans if s.parent_span_id and (s.parent_span_id not in ids or s.parent_span_id == s.span_id)]
    candidates = true_roots or orphans
    if not candidates:
        return None
    return min(candidates, key=lambda s: (-(s.end - s.start), s.start, s.span_id))


def _clipped(children: Iterable[Span], start: float, end: float) -> list[Span]:
    """Children clipped to [start, end], those with nothing left dropped; latest end first (ties: the
    earlier start, i.e. the longer child, then the span id, so the order is deterministic)."""
    kept = []
    for child in children:
        clipped = Span(child.span_id, child.parent_span_id, max(child.start, start), min(child.end, end))
        if clipped.end > clipped.start:
            kept.append(clipped)
    return sorted(kept, key=lambda s: (-s.end, s.start, s.span_id))


def critical_path(spans: Sequence[Span], root: Span | None = None) -> list[Segment]:
    """The critical path from ``root`` (default ``find_root``) as segments in time order; see the module
    docstring for the definition. Adjacent segments of the same span are merged."""
    root = root or find_root(spans)
    if root is None or root.end <= root.start:
        return []
    children = children_by_parent(spans)
    segments: list[Segment] = []
    # Each window (a span clipped to its parent's) is handled on its own, so an explicit stack replaces
    # recursion (no depth limit) and the order of handling does not matter: segments are sorted at the end.
    stack = [(root.span_id, root.start, root.end)]
    while stack:
        span_id, start, end = stack.pop()
        cursor = end  # everything after the cursor is already explained
        for child in _clipped(children.get(span_id, ()), start, end):
            if child.end > cursor:
                continue  # ran in parallel with the critical child after it: not waited for
            if cursor > child.end:
                segments.append(Segment(span_id, child.end, cursor))  # the parent's own work
            stack.append((child.span_id, child.start, child.end))
            cursor = child.start
        if cursor > start:
            segments.append(Segment(span_id, start, cursor))
    return _merge(sorted(segments, key=lambda s: s.start))


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for segment in segments:
        if merged and merged[-1].span_id == segment.span_id and merged[-1].end == segment.start:
            merged[-1] = Segment(segment.span_id, merged[-1].start, segment.end)
        else:
            merged.append(segment)
    return merged


def critical_time(segments: Iterable[Segment]) -> dict[str, float]:
    """Time each span spends on the critical path (its own work the root waited for)."""
    totals: dict[str, float] = defaultdict(float)
    for segment in segments:
        totals[segment.span_id] += segment.duration
    return dict(totals)


def waterfall_order(spans: Sequence[Span]) -> list[tuple[Span, int]]:
    """Spans depth first from the root, children by start time, with their depth; spans not under the
    root (orphans, other roots) follow at depth 0 with their own subtrees, by start time."""
    children = children_by_parent(spans)
    root = find_root(spans)
    ids = {s.span_id for s in spans}
    ordered: list[tuple[Span, int]] = []
    seen: set[str] = set()
    others = [s for s in sorted(spans, key=lambda s: (s.start, s.span_id))
              if s is not root and (not s.parent_span_id or s.parent_span_id not in ids)]
    tops = ([root] if root else []) + others
    for top in tops:
        stack = [(top, 0)]
        while stack:
            span, depth = stack.pop()
            if span.span_id in seen:
                continue  # a cycle or a duplicate id: draw each span once
            seen.add(span.span_id)
            ordered.append((span, depth))
            for child in sorted(children.get(span.span_id, ()), key=lambda s: (s.start, s.span_id), reverse=True):
                stack.append((child, depth + 1))
    # Spans in a parent cycle are reachable from no top: still draw them.
    ordered += [(s, 0) for s in sorted(spans, key=lambda s: (s.start, s.span_id)) if s.span_id not in seen]
    return ordered


def waterfall(spans: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A trace's spans (``queries.trace_spans``) laid out for a waterfall: one row per span in tree order
    with its depth, a unique row label, start and end in ms from the trace's first span, and its time on
    the critical path; and the critical path's segments on the same rows and scale."""
    if spans.is_empty():
        return spans, pl.DataFrame()
    origin = spans["started_at"].min()
    timed = spans.with_columns(
        ((pl.col("started_at") - origin).dt.total_microseconds() / 1000).alias("start_ms"),
        ((pl.col("ended_at") - origin).dt.total_microseconds() / 1000).alias("end_ms"),
    )
    tree = [Span(r["span_id"], r["parent_span_id"], r["start_ms"], r["end_ms"])
            for r in timed.select("span_id", "parent_span_id", "start_ms", "end_ms").iter_rows(named=True)]
    segments = critical_path(tree)
    on_path = critical_time(segments)
    names = dict(zip(timed["span_id"], timed["span_name"]))
    layout = pl.DataFrame(
        [{"span_id": span.span_id, "row": i + 1, "depth": depth,
          # Numbered, so two spans of the same name stay two rows; dots show the nesting.
          "label": f"{i + 1:>2} {'· ' * depth}{names[span.span_id]}",
          "critical_ms": on_path.get(span.span_id, 0.0)}
         for i, (span, depth) in enumerate(waterfall_order(tree))],
        schema={"span_id": pl.String, "row": pl.Int64, "depth": pl.Int64, "label": pl.String,
                "critical_ms": pl.Float64})
    frame = layout.join(timed, on="span_id", how="left").sort("row")
    labels = dict(zip(frame["span_id"], frame["label"]))
    path = pl.DataFrame([{"span_id": s.span_id, "label": labels[s.span_id], "start_ms": s.start, "end_ms": s.end,
                          "ms": s.duration} for s in segments],
                        schema={"span_id": pl.String, "label": pl.String, "start_ms": pl.Float64,
                                "end_ms": pl.Float64, "ms": pl.Float64})
    return frame, path
