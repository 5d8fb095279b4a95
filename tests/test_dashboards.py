"""The Streamlit dashboards on the simulated world, through Streamlit's own AppTest (a real script run,
real DuckDB): every page renders without an exception, and on every page a KPI equals the value
queried here, independently, from the published mart with DuckDB. A missing, empty or half-built
published file gives a message with the command that produces it, never a traceback.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from dashboards import queries
from dashboards.formatting import change, interval, lift, measure, milliseconds, p_value, percent, points, score
from dashboards.pages import WAREHOUSE_PAGES
from pitwall.duck import connect

pytestmark = pytest.mark.slow

APP = str(ROOT / "dashboards" / "app.py")
PAGES = [page.file for page in WAREHOUSE_PAGES]
# The experiments the simulated apps expose users to (simulator/experiments.py: every one of experiments/flags.yaml);
# booking-flow-v2 has the planted SRM.
EXPOSED_EXPERIMENTS = {"nba-reasons-text", "home-layout-v2", "booking-flow-v2", "nba-home-card",
                       "nba-post-job-placement", "personalized-home"}


@pytest.fixture(scope="module")
def published(world) -> Path:
    path = world[0] / "published" / "pitwall.duckdb"
    assert path.exists()
    return path


@pytest.fixture(scope="module")
def mart(published):
    """An independent read-only connection to the published file, for the expected values. Opened with
    the app's settings: DuckDB refuses a second connection to a file with a different configuration
    in the same process."""
    con = connect(published, read_only=True)
    yield con
    con.close()


def test_every_pages_queries_return_rows_on_the_demo_world(mart):
    """queries.PAGE_QUERIES, what a benchmark or a notebook times without Streamlit (docs/dashboards.md, Speed):
    one entry per page of the app's table map, and on the demo world every query of every page returns rows
    over the whole data (the default week can miss what happened earlier, such as the planted SLA breaches)."""
    assert set(queries.PAGE_QUERIES) == set(queries.PAGE_TABLES)
    extent = queries.data_extent(mart)
    f = queries.default_filters(mart, days=(extent.item(0, "last_day") - extent.item(0, "first_day")).days + 1)
    empty = [(page, query.__name__) for page, page_queries in queries.PAGE_QUERIES.items()
             for query in page_queries if query(mart, f).is_empty()]
    assert empty == []


@pytest.fixture
def app(world, monkeypatch) -> AppTest:
    monkeypatch.setenv("PITWALL_DATA_DIR", str(world[0]))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def window(mart) -> tuple[date, date]:
    """The app's default window: the last 7 days with sessions."""
    last = mart.execute("select max(day) from mart_release_health").fetchall()[0][0]
    return last - timedelta(days=6), last


def metric(at: AppTest, label: str):
    found = [m for m in at.metric if m.label == label]
    assert found, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return found[0]


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_every_page_renders_without_exception(app):
    for page in PAGES:
        open_page(app, page)
        assert app.title[0].value  # something was drawn


def test_overview_crash_free_and_latency_match_the_marts(app, mart, window):
    start, end = window
    previous_start = start - timedelta(days=7)
    rates = dict(mart.execute("""
        select day >= ? as current, sum(sessions - crashed_sessions) / sum(sessions)
        from mart_release_health where day between ? and ? group by all
    """, [start, previous_start, end]).fetchall())
    crash_free = metric(app, "Crash-free sessions")
    assert crash_free.value == percent(rates[True])
    assert crash_free.delta == points(rates[True], rates[False])

    p95 = dict(mart.execute("""
        select cast(started_at as date) >= ? as current, quantile_cont(duration_ms, 0.95)
        from stg_spans where kind = 'client' and http_route is not null
          and cast(started_at as date) between ? and ? group by all
    """, [start, previous_start, end]).fetchall())
    latency = metric(app, "p95 API latency")
    assert latency.value == milliseconds(p95[True])
    assert latency.delta == change(p95[True], p95[False], " ms")


def test_overview_funnel_conversion_matches_the_mart(app, mart, window):
    entries, conversions = mart.execute("""
        select sum(entered) filter (where step_order = 1), sum(entered) filter (where step_order = 3)
        from mart_funnel_daily where funnel = 'login' and day between ? and ?
    """, list(window)).fetchall()[0]
    assert metric(app, "Login").value == percent(conversions / entries, 1)


def test_filters_persist_across_pages(app, mart, window):
    app.multiselect(key="filter_platforms").set_value(["ios"]).run()
    open_page(app, "views/release_health.py")
    assert app.multiselect(key="filter_platforms").value == ["ios"]
    expected = mart.execute("""
        select 1 - sum(crashed_sessions) / sum(sessions) from mart_release_health
        where platform = 'ios' and day between ? and ?
    """, list(window)).fetchall()[0][0]
    assert metric(app, "Crash-free sessions").value == percent(expected)


def test_funnels_page_matches_the_mart_for_a_chosen_funnel_and_breakdown(app, mart, window):
    open_page(app, "views/funnels.py")
    app.selectbox(key="funnel_name").set_value("job_completion").run()
    app.selectbox(key="funnel_breakdown").set_value("platform").run()
    assert not app.exception, [e.value for e in app.exception]
    entries, conversions = mart.execute("""
        select sum(entered) filter (where step_order = 1), sum(entered) filter (where step_order = 4)
        from mart_funnel_daily where funnel = 'job_completion' and day between ? and ?
    """, list(window)).fetchall()[0]
    assert metric(app, "Entries").value == f"{entries:,}"
    assert metric(app, "Overall conversion").value == percent(conversions / entries, 1)


def test_funnel_time_to_convert_agrees_with_the_mart_on_one_day(mart, window):
    """The page's exact percentiles over the entry steps give the mart's own numbers on the mart's grain."""
    day, platform, version, role, median, p90 = mart.execute("""
        select day, platform, app_version, role, median_seconds_from_entry, p90_seconds_from_entry
        from mart_funnel_daily where funnel = 'login' and step_order = 3 and entered > 5
        order by day desc, entered desc limit 1
    """).fetchall()[0]
    f = queries.Filters(start=day, end=day, platforms=(platform,), app_versions=(version,), roles=(role,))
    timing = queries.funnel_time_to_convert(mart, f, "login").filter(step_order=3)
    assert timing["median_seconds"][0] == pytest.approx(median)
    assert timing["p90_seconds"][0] == pytest.approx(p90)


def test_engagement_counts_each_person_once(app, mart, window):
    open_page(app, "views/engagement.py")
    day = window[1]
    # independently: people (user, else anonymous id, else device) who started a session that day / in the 30 days to it
    dau, mau = mart.execute("""
        select count(distinct coalesce(user_id, anonymous_id, device_id)) filter (where cast(started_at as date) = $day),
               count(distinct coalesce(user_id, anonymous_id, device_id))
        from fct_sessions where cast(started_at as date) between $day::date - 29 and $day
    """, {"day": day}).fetchall()[0]
    assert metric(app, f"DAU on {day}").value == f"{dau:,}"
    assert metric(app, "MAU").value == f"{mau:,}"
    # in this world nobody uses two apps or platforms, so the mart's segments add up to the same DAU
    assert mart.execute("select sum(dau) from mart_engagement_daily where day = ?", [day]).fetchall()[0][0] == dau


def test_release_health_shows_the_crash_spike_release_as_least_crash_free(app, mart, world):
    first, last = mart.execute("select min(day), max(day) from mart_release_health").fetchall()[0]
    app.date_input(key="filter_dates").set_value((first, last)).run()
    open_page(app, "views/release_health.py")
    expected = mart.execute("""
        select 1 - sum(crashed_sessions) / sum(sessions) from mart_release_health
    """).fetchall()[0][0]
    assert metric(app, "Crash-free sessions").value == percent(expected)
    spike = world[1]["crashes"]["spike"]
    least = metric(app, f"Least crash-free: {spike['app']}")
    assert f"{spike['app']}@{least.value}" == spike["release"]


def test_api_latency_requests_and_error_rate_match_the_mart(app, mart, window):
    open_page(app, "views/api_latency.py")
    requests, errors = mart.execute("""
        select sum(requests), sum(errors) from mart_api_latency_daily where day between ? and ?
    """, list(window)).fetchall()[0]
    assert metric(app, "Requests").value == f"{requests:,}"
    assert metric(app, "Error rate").value == percent(errors / requests)


def test_latency_percentiles_agree_with_the_mart_and_show_the_regressed_route(mart, world):
    day, route, method, version, platform, p95 = mart.execute("""
        select day, route, method, app_version, platform, p95_ms from mart_api_latency_daily
        order by requests desc limit 1
    """).fetchall()[0]
    one_row = queries.Filters(start=day, end=day, app_versions=(version,), platforms=(platform,))
    slowest = queries.slowest_routes(mart, one_row).filter(route=route, method=method)
    assert slowest["p95_ms"][0] == pytest.approx(p95)

    regression = world[1]["latency"]["regression"]
    first, last = mart.execute("select min(day), max(day) from mart_api_latency_daily").fetchall()[0]

    def route_p95(version: str) -> float:
        f = queries.Filters(start=first, end=last, app_versions=(version,))
        return queries.slowest_routes(mart, f).filter(route=regression["route"])["p95_ms"][0]

    assert route_p95(regression["app_version"]) > 1.5 * route_p95("3.4.1")


def test_feedback_nps_matches_the_mart_or_says_it_is_not_built(app, mart, window):
    open_page(app, "views/feedback.py")
    tables = {name for (name,) in mart.execute("select table_name from information_schema.tables").fetchall()}
    if "mart_nps_weekly" not in tables:
        assert any("mart_nps_weekly" in i.value and "make demo" in i.value for i in app.info)
        return
    start, end = window
    nps = mart.execute("""
        select 100 * (sum(promoters) - sum(detractors)) / sum(responses) from mart_nps_weekly
        where week_start between date_trunc('week', ?::date) and ?
    """, [start, end]).fetchall()[0][0]
    assert metric(app, "NPS").value == score(nps)


def open_experiment(at: AppTest, key: str) -> AppTest:
    open_page(at, "views/experiments.py")
    at.selectbox(key="experiment_key").set_value(key).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def dataframe_with(at: AppTest, column: str):
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[0]


def shown_lift(basis: str | None, value, low, high) -> tuple[str, str]:
    """The lift and interval as the page shows the mart's decision: relative in %, absolute as a number."""
    if (basis or "").endswith("absolute"):
        return (f"{value:+,.2f}", f"[{low:+,.2f}, {high:+,.2f}]")
    return lift(value), interval(low, high)


def test_experiments_list_shows_every_experiment_of_the_mart(app, mart):
    open_page(app, "views/experiments.py")
    listed = dataframe_with(app, "key")
    in_mart = {key for (key,) in mart.execute("select distinct experiment_key from mart_experiment_results").fetchall()}
    assert EXPOSED_EXPERIMENTS <= set(listed["key"])
    assert set(listed["key"]) == in_mart
    for key in EXPOSED_EXPERIMENTS:
        users_c, users_t, basis, value, low, high, p, verdict, srm = mart.execute("""
            select control_users, treatment_users, decision_basis, decision_lift, decision_ci_low, decision_ci_high,
                   decision_p_value, verdict, srm_flag
            from mart_experiment_results where experiment_key = ? and is_primary
        """, [key]).fetchall()[0]
        row = listed[listed["key"] == key].iloc[0]
        assert (row["control users"], row["treatment users"]) == (users_c, users_t)
        assert (row["lift"], row["95% CI"]) == shown_lift(basis, value, low, high)
        assert (row["p-value"], row["verdict"]) == (p_value(p), verdict)
        assert ("SRM" in row["warnings"]) == srm


def test_the_verdict_shown_never_contradicts_the_interval_shown(app, mart):
    """Every metric of every experiment: the page's verdict is the mart's, beside the interval it was read
    from, and that interval is on the verdict's side of 0 (the old page showed the relative interval beside
    the absolute test's verdict); an experiment with SRM shows no verdict at all."""
    for key in sorted(EXPOSED_EXPERIMENTS):
        open_experiment(app, key)
        table = dataframe_with(app, "role")
        rows = mart.execute("""
            select metric_label, decision_basis, decision_lift, decision_ci_low, decision_ci_high, decision_p_value,
                   verdict, higher_is_better, srm_flag
            from mart_experiment_results where experiment_key = ? and is_primary""", [key]).fetchall()
        rows += mart.execute("""
            select metric_label, decision_basis, decision_lift, decision_ci_low, decision_ci_high, decision_p_value,
                   verdict, higher_is_better, srm_flag
            from mart_experiment_results where experiment_key = ? and not is_primary""", [key]).fetchall()
        assert len(table) == len(rows)
        for label, basis, value, low, high, p, verdict, higher_is_better, srm in rows:
            shown = table[table["metric"] == label].iloc[0]
            assert shown["verdict"] == verdict
            if srm:
                assert verdict == "invalid: sample ratio mismatch"
                continue
            if basis is None:  # no interval at all: flagged or no result, never better, worse or inconclusive
                assert verdict.startswith(("flagged:", "no result:")) and shown["95% CI"] == "—"
                continue
            assert (shown["lift"], shown["95% CI"]) == shown_lift(basis, value, low, high)
            assert shown["p-value"] == p_value(p)
            good = low > 0 if higher_is_better else high < 0
            bad = high < 0 if higher_is_better else low > 0
            assert verdict == ("significantly better" if good else "significantly worse" if bad else "inconclusive")
            assert (p < 0.05) == (good or bad)


def test_srm_is_shown_for_booking_flow_and_not_for_nba_reasons(app, mart, world):
    assert world[1]["experiments"]["booking-flow-v2"]["srm_planted"]
    open_experiment(app, "booking-flow-v2")
    srm = [e.value for e in app.error if "Sample ratio mismatch" in e.value]
    assert srm, [e.value for e in app.error]
    control, treatment, srm_p = mart.execute("""
        select max(control_users), max(treatment_users), any_value(srm_p_value) from mart_experiment_results
        where experiment_key = 'booking-flow-v2'
    """).fetchall()[0]
    assert f"{control:,} users" in srm[0] and f"{treatment:,} users" in srm[0]
    assert f"p-value {p_value(srm_p)}" in srm[0]

    assert metric(app, "p-value").delta == "invalid: sample ratio mismatch"
    assert not any("Guardrail regressed" in w.value for w in app.warning)

    open_experiment(app, "nba-reasons-text")
    assert not any("Sample ratio mismatch" in e.value for e in app.error)
    assert metric(app, "Control users").value  # the page did draw the experiment


def test_experiment_primary_metric_matches_the_mart(app, mart):
    for key in sorted(EXPOSED_EXPERIMENTS):
        open_experiment(app, key)
        (label, metric_type, users_c, users_t, mean_c, mean_t, basis, value, low, high, p, verdict,
         cuped) = mart.execute("""
            select metric_label, metric_type, control_users, treatment_users, control_mean, treatment_mean,
                   decision_basis, decision_lift, decision_ci_low, decision_ci_high, decision_p_value, verdict,
                   cuped_variance_reduction
            from mart_experiment_results where experiment_key = ? and is_primary
        """, [key]).fetchall()[0]
        assert metric(app, "Control users").value == f"{users_c:,}"
        assert metric(app, "Treatment users").value == f"{users_t:,}"
        assert any(m.value == f"**Primary metric:** {label}" for m in app.markdown)
        shown_value, shown_interval = shown_lift(basis, value, low, high)
        shown = metric(app, "Absolute lift" if basis.endswith("absolute") else "Relative lift")
        assert (shown.value, shown.delta) == (shown_value, f"95% CI {shown_interval}")
        shown = metric(app, "p-value")
        assert (shown.value, shown.delta) == (p_value(p), verdict)

        results = dataframe_with(app, "role")
        first = results.iloc[0]
        assert (first["metric"], first["role"]) == (label, "primary")
        rate = metric_type == "ratio" and 0 <= min(mean_c, mean_t) and max(mean_c, mean_t) <= 1
        assert (first["control"], first["treatment"]) == (measure(mean_c, rate), measure(mean_t, rate))
        assert (first["lift"], first["95% CI"], first["p-value"]) == (shown_value, shown_interval, p_value(p))
        assert (first["verdict"], first["basis"]) == (verdict, basis)
        if cuped is not None:
            assert first["CUPED variance reduction"] == percent(cuped, 1)
        # primary first, then the guardrails, then the others
        roles = list(results["role"])
        assert roles == sorted(roles, key=["primary", "guardrail", "secondary"].index)


def test_the_planted_lift_is_significant_and_the_null_is_not(app):
    open_experiment(app, "nba-reasons-text")
    assert metric(app, "p-value").delta == "significantly better"
    open_experiment(app, "home-layout-v2")
    assert metric(app, "p-value").delta == "inconclusive"


def _published_copy(mart, root: Path, experiments_where: str, regress: str | None = None,
                    zero_variance: str | None = None) -> Path:
    """A published file with the tables the Experiments page needs, copied from the world's, the experiment
    marts limited to ``experiments_where``; ``regress`` names a metric to turn into a regressed guardrail,
    ``zero_variance`` one whose treatment fell to 0 for every user (a guardrail: regressed, flagged)."""
    (root / "published").mkdir(parents=True)
    con = duckdb.connect(str(root / "published" / "pitwall.duckdb"))
    try:
        for table, where in [("mart_release_health", "true"), ("apps", "true"), ("experiment_definitions", "true"),
                             ("mart_experiment_results", experiments_where),
                             ("mart_experiment_daily", experiments_where)]:
            frame = mart.sql(f"select * from {table} where {where}").pl().to_arrow()
            con.register("frame", frame)
            con.execute(f"create table {table} as select * from frame")
            con.unregister("frame")
        if regress:
            con.execute("""update mart_experiment_results set is_guardrail = true, significantly_better = false,
                           significantly_worse = true, guardrail_regressed = true,
                           verdict = 'significantly worse' where metric = ?""", [regress])
        if zero_variance:
            con.execute("""update mart_experiment_results set treatment_mean = 0, zero_variance_arm = 'treatment',
                           zero_variance_flag = true, is_guardrail = true, guardrail_regressed = true,
                           significantly_better = false, significantly_worse = false, significant = false,
                           decision_basis = null, decision_lift = null, decision_ci_low = null,
                           decision_ci_high = null, decision_p_value = null,
                           verdict = 'flagged: zero variance in the treatment' where metric = ?""", [zero_variance])
    finally:
        con.close()
    return root


def test_a_regressed_guardrail_is_shown(tmp_path, monkeypatch, mart):
    """The simulated world has no regressed guardrail: one is planted in a copy of the marts."""
    root = _published_copy(mart, tmp_path / "data", "experiment_key = 'nba-reasons-text'",
                           regress="crash_free_sessions")
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    open_page(at, "views/experiments.py")
    assert "guardrail: Crash-free sessions" in dataframe_with(at, "key")["warnings"].iloc[0]
    warnings = [w.value for w in at.warning if "Guardrail regressed" in w.value]
    assert warnings and "Crash-free sessions" in warnings[0]
    assert not any("Sample ratio mismatch" in e.value for e in at.error)


def test_a_zero_variance_arm_is_flagged_on_the_page(tmp_path, monkeypatch, mart):
    """A guardrail that fell to 0 for every treated user has no interval: the page flags it (list and
    experiment) with what happened, instead of an inconclusive verdict."""
    root = _published_copy(mart, tmp_path / "data", "experiment_key = 'nba-reasons-text'",
                           zero_variance="crash_free_sessions")
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    open_page(at, "views/experiments.py")
    assert not at.exception, [e.value for e in at.exception]
    warnings = dataframe_with(at, "key")["warnings"].iloc[0]
    assert "zero variance: Crash-free sessions" in warnings and "guardrail: Crash-free sessions" in warnings
    regressed = [w.value for w in at.warning if "Guardrail regressed" in w.value]
    assert regressed and "Crash-free sessions" in regressed[0] and "for every user of the treatment" in regressed[0]
    table = dataframe_with(at, "role")
    assert table[table["metric"] == "Crash-free sessions"].iloc[0]["verdict"] == "flagged: zero variance in the treatment"


def test_an_empty_experiments_mart_says_so(tmp_path, monkeypatch, mart):
    root = _published_copy(mart, tmp_path / "data", "false")
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    open_page(at, "views/experiments.py")
    assert any("No experiment has results yet" in i.value for i in at.info)
    assert not at.dataframe


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_no_published_file_says_how_to_make_one(tmp_path, monkeypatch, state):
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path))
    if state == "empty":
        (tmp_path / "published").mkdir()
        (tmp_path / "published" / "pitwall.duckdb").touch()
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("make demo" in w.value for w in at.warning)


def test_a_published_file_without_the_marts_says_they_are_not_built(tmp_path, monkeypatch):
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path))
    (tmp_path / "published").mkdir()
    duckdb.connect(str(tmp_path / "published" / "pitwall.duckdb")).close()
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Not built yet" in i.value and "make demo" in i.value for i in at.info)


def test_partners_page_shows_the_planted_sla_breaches_and_open_breaks(app, mart, window, world):
    """Each partner's card counts the days the simulator planted an SLA breach in the default window; the
    open breaks are the planted ones that no late update has fixed yet."""
    open_page(app, "views/partners.py")
    start, end = window
    planted = world[1]["partners"]
    for partner in ("oem", "roadside", "warranty"):
        days = {b["day"] for b in planted["sla_breaches"]
                if b["partner"] == partner and start.isoformat() <= b["day"] <= end.isoformat()}
        judged = mart.execute("select count(*) filter (where slas_judged > 0) from mart_partner_sla_daily "
                              "where partner = ? and day between ? and ?", [partner, start, end]).fetchall()[0][0]
        assert metric(app, partner).delta == f"{len(days)} of {judged} days breached"
    assert metric(app, "Open breaks").value == f"{len(planted['breaks']):,}"
    stake = mart.execute("select sum(amount_at_stake) from mart_reconciliation_breaks where status = 'open'").fetchall()
    assert metric(app, "Amount at stake").value == f"${stake[0][0]:,.2f}"


def test_recommendations_page_shows_the_champion_and_the_serving_table(app, mart, world):
    """The demo world trains a champion: the page shows the version the MLflow registry holds with its holdout
    metrics, and its counts and one customer's rows equal the published serving table's."""
    from mlflow import MlflowClient

    open_page(app, "views/recommendations.py")
    store = f"sqlite:///{world[0] / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)  # not the registry another test set
    champion = client.get_model_version_by_alias("pitwall-nba", "champion")
    logged = client.get_run(champion.run_id).data.metrics
    assert metric(app, "Champion").value == f"pitwall-nba v{champion.version}"
    assert metric(app, "AUC").value == f"{logged['model_auc']:.3f}"
    assert metric(app, "NDCG@3").value == f"{logged['model_ndcg_at_3']:.3f}"
    (rows,) = mart.execute("select count(*) from recommendations").fetchall()[0]
    assert metric(app, "Rows").value == f"{rows:,}"
    for policy, n in mart.execute("select policy, count(*) from recommendations group by 1").fetchall():
        assert metric(app, policy).value == f"{n:,}"
    first, last = mart.execute("select min(user_id), max(user_id) from recommendations").fetchall()[0]
    for user in (first, last):
        if user == last:
            app.text_input(key="recommendation_user").set_value(last).run()
            assert not app.exception, [e.value for e in app.exception]
        shown = dataframe_with(app, "reasons")
        expected = mart.execute("select placement, rank, action_id, array_to_string(reason_codes, ' · ') "
                                "from recommendations where user_id = ? order by placement, rank", [user]).fetchall()
        assert list(zip(shown["placement"], shown["rank"], shown["action_id"], shown["reasons"])) == expected


def test_overview_warns_when_the_previous_window_lies_before_the_data(app, mart, window):
    from dashboards.data import DATES_KEY

    open_page(app, "views/overview.py")
    assert not app.warning  # the default window's previous week is inside the data
    first_day = mart.execute("select min(day) from mart_release_health").fetchall()[0][0]
    app.date_input(key=DATES_KEY).set_value((first_day, first_day + timedelta(days=2))).run()
    assert not app.exception, [e.value for e in app.exception]
    (warning,) = app.warning
    assert f"first day {first_day}" in warning.value and "0 days of data" in warning.value


def _chart_specs(at: AppTest) -> list[str]:
    return [element.proto.spec for element in at.get("vega_lite_chart")]


def test_daily_charts_mark_a_last_day_no_ingestion_has_seen_end(app, world, mart, tmp_path, monkeypatch):
    """The world's data was ingested after its last day: no mark. Ingested at noon of its last day instead, the
    daily charts mark that day as incomplete (a half-loaded day's dip is not a drop)."""
    from dashboards.charts import INCOMPLETE_NOTE

    for page in ("views/overview.py", "views/engagement.py"):
        open_page(app, page)
        assert not any(INCOMPLETE_NOTE in spec for spec in _chart_specs(app)), page

    last_day = mart.execute("select max(day) from mart_release_health").fetchall()[0][0]
    root = tmp_path / "data"
    (root / "published").mkdir(parents=True)
    shutil.copy(world[0] / "published" / "pitwall.duckdb", root / "published" / "pitwall.duckdb")
    con = duckdb.connect(str(root / "published" / "pitwall.duckdb"))
    try:
        con.execute("update stg_events set ingested_at = ?::timestamptz",
                    [f"{last_day} 12:00:00+00"])
    finally:
        con.close()
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    for page in ("views/overview.py", "views/engagement.py", "views/api_latency.py"):
        open_page(at, page)
        marked = [spec for spec in _chart_specs(at) if INCOMPLETE_NOTE in spec]
        assert marked and all(str(last_day) in spec for spec in marked), page
