"""Feedback marts on a simulated world: NPS and CSAT recover what the simulator wrote (truth.json), feature
requests are deduplicated and tagged, and review_prompt_eligibility agrees with an independent polars
implementation of its five rules over the staging tables."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest

pytestmark = pytest.mark.slow


def test_nps_by_app_equals_the_answers_written(con, world):
    truth = world[1]["feedback"]["nps_by_app"]
    got = {app: (r, p, d) for app, r, p, d in con.execute("""
        select app_namespace, sum(responses), sum(promoters), sum(detractors)
        from mart_nps_weekly group by all""").fetchall()}
    assert got == {app: (t["responses"], t["promoters"], t["detractors"]) for app, t in truth.items()}
    # the customers' planted NPS is far above the technicians'
    nps = {app: 100 * (p - d) / r for app, (r, p, d) in got.items()}
    assert nps["com.acme.customer"] - nps["com.acme.tech"] > 20


def test_csat_by_technician_and_job_type_equals_the_answers_written(con, world):
    truth = world[1]["feedback"]
    by_tech = {t: (r, s, k) for t, r, s, k in con.execute("""
        select technician_id, sum(responses), sum(score_sum), sum(satisfied) from mart_csat_daily group by all""").fetchall()}
    assert by_tech == {t: (v["responses"], v["score_sum"], v["satisfied"]) for t, v in truth["csat_by_technician"].items()}
    by_type = {t: (r, s, k) for t, r, s, k in con.execute("""
        select job_type, sum(responses), sum(score_sum), sum(satisfied) from mart_csat_daily group by all""").fetchall()}
    assert by_type == {f"svc_{t}": (v["responses"], v["score_sum"], v["satisfied"]) for t, v in truth["csat_by_job_type"].items()}


def test_planted_low_csat_technicians_rank_lowest(con, world):
    planted_low = {t for t, v in world[1]["feedback"]["csat_by_technician"].items() if v["planted_low"]}
    rates = dict(con.execute("""
        select technician_id, sum(satisfied) / sum(responses) from mart_csat_daily group by all""").fetchall())
    assert planted_low and len(rates) > len(planted_low)
    pooled = lambda techs: sum(rates[t] for t in techs) / len(techs)  # noqa: E731
    others = set(rates) - planted_low
    assert pooled(planted_low) < pooled(others) - 0.2


def test_feature_requests_are_deduplicated_and_tagged(con):
    rows = con.execute("""
        select coalesce(user_id, 'anonymous:' || anonymous_id), app_namespace, properties
        from stg_events where event_name = 'feature_request_submitted'""").fetchall()
    distinct = {(who, app, " ".join(json.loads(props)["text"].split()).lower()) for who, app, props in rows}
    assert len(rows) > len(distinct) > 0  # the world has repeats to remove
    assert con.execute("select sum(requests) from mart_feature_requests").fetchall()[0][0] == len(distinct)
    # the simulator's wordings, each in its topic (German and Chinese invoices included)
    topics = dict(con.execute("select distinct request_text, topic from int_feature_requests").fetchall())
    assert topics == {
        "Allow multiple técnicos per job": "job_workflow",
        "Möchte Rechnungen als PDF exportieren 📄": "invoices_payments",
        "Dark mode please": "appearance",
        "Show the technician's ETA on a map": "tracking",
        "Let me reschedule from the notification": "scheduling",
        "請提供電子發票": "invoices_payments",
    }


# --- review prompts: the rules written again, in polars -------------------------------------------------

def expected_eligibility(con) -> pl.DataFrame:
    now = con.execute("select max(received_at) from stg_events").fetchall()[0][0]
    sessions = con.sql("""
        select user_id, app_namespace, platform, started_at, crashed from fct_sessions
        where role = 'customer' and user_id is not null""").pl().filter(pl.col("started_at") <= now)
    users = (sessions.sort("started_at", descending=True)
             .group_by("user_id", "app_namespace")
             .agg(pl.col("platform").first(), pl.col("crashed").head(3).any().alias("crashed_recently")))
    jobs = con.sql("select customer_id as user_id, job_id, completed_at from stg_jobs").pl().filter(
        (pl.col("completed_at") <= now) & (pl.col("completed_at") > now - timedelta(days=7)))
    answers = []
    for mid, user, props, at in con.execute("""
            select message_id, user_id, properties, occurred_at from stg_events where event_name = 'survey_responded'""").fetchall():
        p = json.loads(props)
        score = p.get("score")
        if p.get("survey_type") == "csat" and isinstance(score, int) and 1 <= score <= 5 and at <= now:
            answers.append({"user_id": user, "job_id": p.get("job_id"), "score": score, "at": at, "mid": mid})
    latest = (pl.DataFrame(answers).sort("at", "mid", descending=True).group_by("user_id", "job_id").first())
    rated = (jobs.join(latest, on=["user_id", "job_id"], how="left")
             .group_by("user_id")
             .agg(pl.col("score").sort_by("at").drop_nulls().last().alias("last_csat_score"),
                  (pl.col("score") >= 4).any().fill_null(False).alias("rated_4_or_more")))
    prompts = con.sql("""
        select user_id, app_namespace, occurred_at from stg_events
        where event_name = 'review_prompt_shown' and user_id is not null""").pl().filter(pl.col("occurred_at") <= now)
    prompts = prompts.group_by("user_id", "app_namespace").agg(
        pl.col("occurred_at").max().alias("last_prompted_at"),
        (pl.col("occurred_at") > now - timedelta(days=365)).sum().alias("prompts_last_365d"))
    out = (users.join(rated, on="user_id", how="left").join(prompts, on=["user_id", "app_namespace"], how="left")
           .with_columns(pl.col("prompts_last_365d").fill_null(0)))
    reason = (pl.when(pl.col("rated_4_or_more").is_null()).then(pl.lit("no_job_completed_in_last_7_days"))
              .when(~pl.col("rated_4_or_more")).then(pl.lit("no_csat_of_4_or_more"))
              .when(pl.col("crashed_recently")).then(pl.lit("crash_in_last_3_sessions"))
              .when(pl.col("last_prompted_at") > now - timedelta(days=90)).then(pl.lit("prompted_in_last_90_days"))
              .when(pl.col("prompts_last_365d") >= 3).then(pl.lit("yearly_prompt_limit_reached")))
    return out.with_columns(ineligible_reason=reason).select(
        "user_id", "platform", "ineligible_reason", "last_csat_score", "prompts_last_365d").sort("user_id")


def test_review_prompt_eligibility_matches_an_independent_implementation(con):
    want = expected_eligibility(con)
    got = con.sql("""
        select user_id, platform, ineligible_reason, last_csat_score, prompts_last_365d, is_eligible
        from review_prompt_eligibility order by user_id""").pl()
    assert (got["is_eligible"] == got["ineligible_reason"].is_null()).all()
    got = got.drop("is_eligible").with_columns(pl.col("last_csat_score").cast(pl.Int64), pl.col("prompts_last_365d").cast(pl.Int64))
    want = want.with_columns(pl.col("last_csat_score").cast(pl.Int64), pl.col("prompts_last_365d").cast(pl.Int64))
    assert got.to_dicts() == want.to_dicts()
    # every rule decides for someone in the demo world, and some users are eligible
    reasons = set(got["ineligible_reason"].to_list())
    assert None in reasons and {"no_job_completed_in_last_7_days", "no_csat_of_4_or_more", "prompted_in_last_90_days"} <= reasons
