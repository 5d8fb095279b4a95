"""OpenTelemetry traces of the apps' API calls, as the Collector's file exporter writes them:
OTLP/JSON, one ExportTraceServiceRequest per line, several traces per line.

A trace is a mobile CLIENT span (resource: the app on one device in one session), its SERVER
child in resource `mobile-api`, under that an INTERNAL authorization span and one CLIENT span per
database statement. Span
times are true time. Ids are lowercase hex, 64-bit integers are strings, enums are integers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from . import ids, planted
from .apps import PARTNERS, ROUTES, DayActivity
from .jobs import Jobs, job_ids
from .world import APPS, DAY_US, DEVICE_MODELS, OS_NAMES, OS_VERSIONS, PLATFORMS, RELEASES, TECH, World

API_HOST = "api.acme-service.com"
TRACES_PER_LINE = 8
SERVER_SCOPE = "mobile_api.http"
CLIENT_SCOPE = "com.acme.mobile.http"
MOBILE_SDK = (("swift", "1.13.0"), ("java", "1.45.0"))  # by platform: telemetry.sdk.language, .version
API_INSTANCE_IDS = ("14196e99-ee1d-4ade-a2d7-c7a4c8381022", "5b0c1a6e-3f7d-4c1e-9a0b-2e6f8d4c7a19", "c3e8f2a1-7b4d-4f60-8e2a-91d5b6c0f3e4")
STATUS_TEXT = {500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class TraceBatch:
    """The day's exported traces: one row per trace, with its spans already rendered."""
    frame: pl.DataFrame  # columns: start_ns, end_ns, dt, client_resource (JSON of a resourceSpans), server_spans (JSON of spans), n_spans
    route: np.ndarray
    version: np.ndarray
    app: np.ndarray
    client_duration_ns: np.ndarray


def api_version(world: World, dt_index: int) -> str:
    """The backend ships weekly."""
    start = np.datetime64(world.start_us, "us").astype("datetime64[D]").item()
    return f"{start.year}.{start.month}.{1 + dt_index // 7}"


def api_resource(world: World, dt_index: int, line_no: int) -> str:
    attrs = (
        ("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.version", "1.45.2"),
        ("service.instance.id", API_INSTANCE_IDS[line_no % len(API_INSTANCE_IDS)]), ("service.name", "mobile-api"),
        ("service.version", api_version(world, dt_index)), ("deployment.environment.name", "production"),
    )
    return '{"attributes": [' + ", ".join(_str_attr(k, v) for k, v in attrs) + "]}"


def _str_attr(key: str, value: str) -> str:
    return f'{{"key": "{key}", "value": {{"stringValue": "{value}"}}}}'


def _attr_expr(key: str, value: pl.Expr) -> list:
    return [pl.lit(f'{{"key": "{key}", "value": {{"stringValue": "'), value, pl.lit('"}}')]


def _int_attr_expr(key: str, value: pl.Expr) -> list:
    return [pl.lit(f'{{"key": "{key}", "value": {{"intValue": "'), value, pl.lit('"}}')]


def _span_expr(kind: int, trace, span, parent, name, start, end, attrs: list, status) -> pl.Expr:
    parts = [pl.lit('{"traceId": "'), trace, pl.lit('", "spanId": "'), span, pl.lit('", ')]
    if parent is not None:
        parts += [pl.lit('"parentSpanId": "'), parent, pl.lit('", ')]
    parts += [pl.lit('"name": "'), name, pl.lit(f'", "kind": {kind}, "startTimeUnixNano": "'), start,
              pl.lit('", "endTimeUnixNano": "'), end, pl.lit('", "attributes": [')]
    for i, a in enumerate(attrs):
        parts += ([pl.lit(", ")] if i else []) + a
    parts += [pl.lit('], "status": '), status, pl.lit(', "flags": 256}')]
    return pl.concat_str(parts)


class TraceBuilder:
    def __init__(self, world: World, jobs: Jobs):
        self.world = world
        self.job_id = np.array(job_ids(np.arange(len(jobs))), dtype=object)
        platform = world.user_platform[world.device_user]
        self.device_model = np.array([DEVICE_MODELS[m][0] for m in world.device_model], dtype=object)
        self.os_version = np.array([OS_VERSIONS[p][v] for p, v in zip(platform, world.device_os_version)], dtype=object)

    def build(self, act: DayActivity) -> TraceBatch:
        w = self.world
        rng = ids.rng_for(w.seed, ids.DAY_TRACES, act.day)
        nc = len(act.call_us)
        # Head sampling; calls from sessions that were offline never reached the API.
        sampled = np.flatnonzero((rng.random(nc) < planted.TRACE_SAMPLE_RATE) & ~act.session_offline[act.call_session])
        n = len(sampled)
        sess = act.call_session[sampled]
        route = act.call_route[sampled].astype(np.int64)
        app = act.session_app[sess].astype(np.int64)
        version = act.session_version[sess].astype(np.int64)
        wifi = act.session_wifi[sess]

        median_ms = np.array([r[2] for r in ROUTES])[route]
        server_ms = rng.lognormal(np.log(median_ms), 0.45)
        rtt_ms = rng.lognormal(np.log(np.where(wifi, 60.0, 140.0)), 0.5)
        error_rate = np.array([r[4] for r in ROUTES])[route]
        failed = rng.random(n) < error_rate
        code = np.where(failed, np.where(rng.random(n) < 0.7, 503, 500), 200)
        forced = act.call_forced_status[sampled]
        code = np.where((forced > 0) & ~failed, forced, code)

        client_start = act.call_us[sampled] * 1000 + rng.integers(0, 1000, n)
        server_start = client_start + (rtt_ms * rng.uniform(0.35, 0.65, n) * 1e6).astype(np.int64)
        server_end = server_start + (server_ms * 1e6).astype(np.int64)
        client_end = client_start + ((rtt_ms + server_ms) * 1e6).astype(np.int64)
        regressed = (route == planted.REGRESSION_ROUTE) & (version == planted.REGRESSION_RELEASE) & (app == TECH)
        client_end = np.where(regressed, client_start + ((client_end - client_start) * planted.REGRESSION_MULTIPLIER).astype(np.int64), client_end)

        keep = np.flatnonzero(client_end < w.end_us * 1000)
        trace_id = ids.hex_ids(rng, n, 16)
        client_sid = ids.hex_ids(rng, n, 8)
        server_sid = ids.hex_ids(rng, n, 8)
        auth_sid = ids.hex_ids(rng, n, 8)
        # An INTERNAL span for the request's authorization, first thing in the server span.
        auth_start = server_start + rng.integers(50_000, 400_000, n)
        auth_end = auth_start + ((server_end - server_start) * rng.uniform(0.01, 0.04, n)).astype(np.int64)

        # Database spans: each statement of the route, one after another inside the server span.
        n_db = np.array([len(r[3]) for r in ROUTES])[route]
        db_trace = np.repeat(np.arange(n), n_db)
        db_pos = np.arange(len(db_trace)) - np.repeat(np.cumsum(n_db) - n_db, n_db)
        db_count = n_db[db_trace]
        s_dur = (server_end - server_start)[db_trace]
        slot = s_dur * 0.9 / db_count
        db_start = server_start[db_trace] + (s_dur * 0.05).astype(np.int64) + (slot * db_pos).astype(np.int64)
        db_end = db_start + (slot * rng.uniform(0.3, 0.9, len(db_trace))).astype(np.int64)
        statements = [r[3] for r in ROUTES]
        db_name = np.array([statements[r][p] for r, p in zip(route[db_trace], db_pos)], dtype=object)
        db_sid = ids.hex_ids(rng, len(db_trace), 8)

        # Paths with the ids filled in.
        call_job = act.call_job[sampled]
        partner = act.call_partner[sampled]
        path = np.array([r[1] for r in ROUTES], dtype=object)[route]
        fill = np.where(call_job >= 0, self.job_id[np.maximum(call_job, 0)], "")
        est = np.array(["est_" + j[4:] if j else "" for j in fill], dtype=object)
        part = np.array(PARTNERS, dtype=object)[np.maximum(partner, 0)]
        path = np.array([
            p.replace("{id}", (e if "estimates" in p else pa if "partners" in p else j)) for p, j, e, pa in zip(path, fill, est, part)
        ], dtype=object)

        dev = act.session_device[sess]
        platform = act.session_platform[sess].astype(np.int64)
        methods = np.array([r[0] for r in ROUTES], dtype=object)[route]
        routes = np.array([r[1] for r in ROUTES], dtype=object)[route]
        status_client = np.where(code >= 400, '{"code": 2, "message": "HTTP ' + code.astype(str).astype(object) + '"}', "{}")
        status_server = np.array([f'{{"code": 2, "message": "{STATUS_TEXT[c]}"}}' if c >= 500 else "{}" for c in code], dtype=object)

        t = pl.DataFrame({
            "trace": ids.to_series(trace_id), "csid": ids.to_series(client_sid), "ssid": ids.to_series(server_sid),
            "asid": ids.to_series(auth_sid), "as": pl.Series(auth_start).cast(pl.String), "ae": pl.Series(auth_end).cast(pl.String),
            "method": pl.Series(methods, dtype=pl.String), "route": pl.Series(routes, dtype=pl.String),
            "path": pl.Series(path, dtype=pl.String), "code": pl.Series(code).cast(pl.String),
            "cs": pl.Series(client_start).cast(pl.String), "ce": pl.Series(client_end).cast(pl.String),
            "ss": pl.Series(server_start).cast(pl.String), "se": pl.Series(server_end).cast(pl.String),
            "net": pl.Series(np.where(wifi, "wifi", "cell").astype(object), dtype=pl.String),
            "st_c": pl.Series(status_client.astype(object), dtype=pl.String), "st_s": pl.Series(status_server, dtype=pl.String),
            "service": pl.Series(np.array([f"{APPS[a].service_prefix}-{PLATFORMS[p]}" for a, p in zip(app, platform)], dtype=object), dtype=pl.String),
            "sversion": pl.Series(np.array([r.version for r in RELEASES], dtype=object)[version], dtype=pl.String),
            "lang": pl.Series(np.array([MOBILE_SDK[p][0] for p in platform], dtype=object), dtype=pl.String),
            "sdkv": pl.Series(np.array([MOBILE_SDK[p][1] for p in platform], dtype=object), dtype=pl.String),
            "os": pl.Series(np.array(OS_NAMES, dtype=object)[platform], dtype=pl.String),
            "osv": pl.Series(self.os_version[dev], dtype=pl.String),
            "model": pl.Series(self.device_model[dev], dtype=pl.String),
            "device": ids.to_series(w.device_id[dev]), "instance": ids.to_series(w.device_install_id[dev]),
            "session": ids.to_series(act.session_uuid[sess]),
        })
        c = pl.col
        name = pl.concat_str([c("method"), pl.lit(" "), c("route")])
        client_span = _span_expr(
            3, c("trace"), c("csid"), None, name, c("cs"), c("ce"),
            [_attr_expr("http.request.method", c("method")),
             _attr_expr("url.full", pl.concat_str([pl.lit(f"https://{API_HOST}"), c("path")])),
             _attr_expr("http.route", c("route")), _attr_expr("server.address", pl.lit(API_HOST)),
             _attr_expr("network.connection.type", c("net")), _int_attr_expr("http.response.status_code", c("code"))],
            c("st_c"),
        )
        resource_attrs = [
            _attr_expr("telemetry.sdk.language", c("lang")), _attr_expr("telemetry.sdk.name", pl.lit("opentelemetry")),
            _attr_expr("telemetry.sdk.version", c("sdkv")), _attr_expr("service.instance.id", c("instance")),
            _attr_expr("service.name", c("service")), _attr_expr("service.version", c("sversion")),
            _attr_expr("os.name", c("os")), _attr_expr("os.version", c("osv")),
            _attr_expr("device.model.identifier", c("model")), _attr_expr("device.id", c("device")),
            _attr_expr("session.id", c("session")),
        ]
        parts = [pl.lit('{"resource": {"attributes": [')]
        for i, a in enumerate(resource_attrs):
            parts += ([pl.lit(", ")] if i else []) + a
        parts += [pl.lit(f']}}, "scopeSpans": [{{"scope": {{"name": "{CLIENT_SCOPE}"}}, "spans": ['), client_span, pl.lit("]}]}")]
        server_span = _span_expr(
            2, c("trace"), c("ssid"), c("csid"), name, c("ss"), c("se"),
            [_attr_expr("http.request.method", c("method")), _attr_expr("http.route", c("route")),
             _attr_expr("url.path", c("path")), _int_attr_expr("http.response.status_code", c("code"))],
            c("st_s"),
        )
        auth_span = _span_expr(
            1, c("trace"), c("asid"), c("ssid"), pl.lit("authorize"), c("as"), c("ae"),
            [_attr_expr("code.function.name", pl.lit("mobile_api.auth.authorize"))], pl.lit("{}"),
        )
        rendered = t.select(client=pl.concat_str(parts), server=server_span, auth=auth_span)

        db_ops = np.array([s.split(" ")[0] for s in db_name], dtype=object)
        d = pl.DataFrame({
            "trace": ids.to_series(trace_id[db_trace]), "sid": ids.to_series(db_sid), "parent": ids.to_series(server_sid[db_trace]),
            "name": pl.Series(db_name, dtype=pl.String), "op": pl.Series(db_ops, dtype=pl.String),
            "s": pl.Series(db_start).cast(pl.String), "e": pl.Series(db_end).cast(pl.String), "owner": db_trace,
        })
        db_spans = d.select(
            pl.col("owner"),
            span=_span_expr(3, c("trace"), c("sid"), c("parent"), c("name"), c("s"), c("e"),
                            [_attr_expr("db.system.name", pl.lit("postgresql")), _attr_expr("db.operation.name", c("op"))],
                            pl.lit("{}")),
        )
        # Spans of the server side in the order they end: authorization, the statements, then the request.
        db_joined = db_spans.group_by("owner", maintain_order=True).agg(pl.col("span").str.join(", "))
        db_text = np.full(n, "", dtype=object)
        db_text[db_joined["owner"].to_numpy()] = db_joined["span"].to_numpy()
        server_side = pl.concat_str([rendered["auth"], pl.lit(", "), pl.Series(db_text, dtype=pl.String), pl.lit(", "), rendered["server"]])
        frame = pl.DataFrame({
            "start_ns": client_start, "end_ns": client_end, "dt": ((client_end // 1000 - w.start_us) // DAY_US),
            "client_resource": rendered["client"], "server_spans": pl.select(server_side).to_series(),
            "n_spans": 3 + n_db,
        }).select(pl.all().gather(keep))
        return TraceBatch(frame=frame, route=route[keep], version=version[keep], app=app[keep],
                          client_duration_ns=(client_end - client_start)[keep])


def render_lines(world: World, dt_index: int, traces: pl.DataFrame, line_offset: int = 0) -> tuple[list[str], list[int]]:
    """Group traces (sorted by start) into ExportTraceServiceRequest lines: one `mobile-api`
    resource with the server-side spans of the batch, then one resource per client span."""
    client = traces["client_resource"].to_list()
    server = traces["server_spans"].to_list()
    n_spans = traces["n_spans"].to_list()
    lines, spans_per_line = [], []
    for k, i in enumerate(range(0, len(client), TRACES_PER_LINE)):
        j = min(i + TRACES_PER_LINE, len(client))
        api = ('{"resource": ' + api_resource(world, dt_index, line_offset + k) + ', "scopeSpans": [{"scope": {"name": "'
               + SERVER_SCOPE + '"}, "spans": [' + ", ".join(server[i:j]) + "]}]}")
        lines.append('{"resourceSpans": [' + api + ", " + ", ".join(client[i:j]) + "]}")
        spans_per_line.append(sum(n_spans[i:j]))
    return lines, spans_per_line
