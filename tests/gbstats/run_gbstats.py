"""GrowthBook's own stats engine (gbstats 0.8.0) on summary-statistic cases, for the parity test.

Runs with .venv-gbstats/bin/python (`make gbstats-venv`), never the project's venv (gbstats needs numpy<2):
    python tests/gbstats/run_gbstats.py CASES.json RESULTS.json

CASES.json: {"cases": [{"id", "metric_type": "mean"|"ratio"|"quantile", "cuped": bool, "alpha",
              "weights": [c, t], "control": {...}, "treatment": {...}}], "srm": [{"id", "users": [...], "weights": [...]}]}
with each arm's sums named as orchestration.experiments.stats.VariationStats names them; quantile arms as
QuantileStats names them (level, events, n_star, quantile, quantile_lower, quantile_upper, users and, for
event-level quantiles clustered by user, sum, sum_squares, denominator_sum, denominator_sum_squares,
sum_products; without those sums the case is an i.i.d. one).

For each case and each difference type ("absolute", "relative"), two routes through gbstats:
- "test": its classes directly: SampleMeanStatistic / RatioStatistic / RegressionAdjustedStatistic (theta
  from compute_theta, which TwoSidedTTest's constructor runs) / QuantileClusteredStatistic /
  QuantileStatistic and TwoSidedTTest(...).compute_result();
- "engine": process_single_metric on query rows shaped as GrowthBook's SQL returns them (main_sum,
  covariate_sum, quantile_n, quantile_nstar, ...), the path GrowthBook itself takes; it also gives the SRM
  p-value (check_srm). Quantile cases go through the engine only when clustered ("quantile_event"): the
  engine's "quantile_unit" reads no cluster sums.
"srm" cases go to gbstats.utils.check_srm.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict

from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.gbstats import process_single_metric
from gbstats.models.settings import AnalysisSettingsForStatsEngine, MetricSettingsForStatsEngine
from gbstats.models.statistics import (
    QuantileClusteredStatistic,
    QuantileStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm

DIFFERENCE_TYPES = ("absolute", "relative")


def _float(x):
    """JSON has no NaN/inf in strict parsers: None for those."""
    x = float(x)
    return x if math.isfinite(x) else None


def quantile_statistic(arm: dict):
    common = dict(
        n=int(arm["events"]), n_star=int(arm["n_star"]), nu=arm["level"], quantile_hat=arm["quantile"],
        quantile_lower=arm["quantile_lower"], quantile_upper=arm["quantile_upper"],
    )
    if arm.get("sum") is None:
        return QuantileStatistic(**common)
    return QuantileClusteredStatistic(
        **common, main_sum=arm["sum"], main_sum_squares=arm["sum_squares"], denominator_sum=arm["denominator_sum"],
        denominator_sum_squares=arm["denominator_sum_squares"], main_denominator_sum_product=arm["sum_products"],
        n_clusters=int(arm["users"]),
    )


def _safe(value):
    """A property that divides by zero for degenerate arms (gbstats never reads it then): None."""
    try:
        return _float(value())
    except ZeroDivisionError:
        return None


def statistic(arm: dict, metric_type: str, cuped: bool):
    if metric_type == "quantile":
        return quantile_statistic(arm)
    n = int(arm["users"])
    post = SampleMeanStatistic(n=n, sum=arm["sum"], sum_squares=arm["sum_squares"])
    if metric_type == "ratio":
        denominator = SampleMeanStatistic(n=n, sum=arm["denominator_sum"], sum_squares=arm["denominator_sum_squares"])
        return RatioStatistic(n=n, m_statistic=post, d_statistic=denominator, m_d_sum_of_products=arm["sum_products"])
    if cuped:
        pre = SampleMeanStatistic(n=n, sum=arm["pre_sum"], sum_squares=arm["pre_sum_squares"])
        return RegressionAdjustedStatistic(
            n=n, post_statistic=post, pre_statistic=pre,
            post_pre_sum_of_products=arm["post_pre_sum_products"], theta=0,
        )
    return post


def describe(stat) -> dict:
    return {
        "type": type(stat).__name__,
        "n": stat.n,
        "mean": _float(stat.mean),
        "unadjusted_mean": _float(stat.unadjusted_mean),
        "variance": _float(stat.variance),  # per user
        "theta": _float(stat.theta) if isinstance(stat, RegressionAdjustedStatistic) else 0.0,
        "zero_variance": bool(stat._has_zero_variance),
    }


def run_test(case: dict, difference_type: str) -> dict:
    test = TwoSidedTTest(
        statistic(case["control"], case["metric_type"], case["cuped"]),
        statistic(case["treatment"], case["metric_type"], case["cuped"]),
        FrequentistConfig(difference_type=difference_type, alpha=case["alpha"]),
    )
    result = test.compute_result()
    return {
        "expected": _float(result.expected),
        "ci": [_float(x) for x in result.ci],
        "p_value": _float(result.p_value),
        "stddev": _float(result.uplift.stddev),
        "error_message": result.error_message,
        "dof": _safe(lambda: test.dof),
        "variance": _safe(lambda: test.variance),
        "control": describe(test.stat_a),
        "treatment": describe(test.stat_b),
    }


def quantile_query_row(variation: str, arm: dict) -> dict:
    """GrowthBook's row for an event quantile (experiment-fact-metric-statistics-cte): users, the cluster sums
    (main_* over s_i, denominator_* over n_i) and the quantile columns after the n* grid was read."""
    return {
        "dimension": "",
        "variation": variation,
        "users": int(arm["users"]),
        "count": int(arm["users"]),
        "main_sum": arm["sum"],
        "main_sum_squares": arm["sum_squares"],
        "denominator_sum": arm["denominator_sum"],
        "denominator_sum_squares": arm["denominator_sum_squares"],
        "main_denominator_sum_product": arm["sum_products"],
        "quantile_n": int(arm["events"]),
        "quantile_nstar": int(arm["n_star"]),
        "quantile": arm["quantile"],
        "quantile_lower": arm["quantile_lower"],
        "quantile_upper": arm["quantile_upper"],
    }


def query_row(variation: str, arm: dict) -> dict:
    row = {
        "dimension": "",
        "variation": variation,
        "users": int(arm["users"]),
        "count": int(arm["users"]),
        "main_sum": arm["sum"],
        "main_sum_squares": arm["sum_squares"],
    }
    if arm.get("denominator_sum") is not None:
        row.update(
            denominator_sum=arm["denominator_sum"],
            denominator_sum_squares=arm["denominator_sum_squares"],
            main_denominator_sum_product=arm["sum_products"],
        )
    if arm.get("pre_sum") is not None:
        row.update(
            covariate_sum=arm["pre_sum"],
            covariate_sum_squares=arm["pre_sum_squares"],
            main_covariate_sum_product=arm["post_pre_sum_products"],
        )
    return row


def run_engine(case: dict, difference_type: str) -> dict | None:
    if case["metric_type"] == "quantile":
        if case["control"].get("sum") is None:
            return None
        metric = MetricSettingsForStatsEngine(
            id="m", name="m", statistic_type="quantile_event", main_metric_type="quantile",
            quantile_value=case["control"]["level"],
        )
        row_of = quantile_query_row
    else:
        statistic_type = "ratio" if case["metric_type"] == "ratio" else ("mean_ra" if case["cuped"] else "mean")
        metric = MetricSettingsForStatsEngine(
            id="m", name="m", statistic_type=statistic_type, main_metric_type="count",
            denominator_metric_type="count" if statistic_type == "ratio" else None,
            covariate_metric_type="count" if statistic_type == "mean_ra" else None,
        )
        row_of = query_row
    analysis = AnalysisSettingsForStatsEngine(
        var_names=["control", "treatment"], var_ids=["0", "1"], weights=case["weights"],
        stats_engine="frequentist", difference_type=difference_type, alpha=case["alpha"],
    )
    rows = [row_of("0", case["control"]), row_of("1", case["treatment"])]
    out = asdict(process_single_metric(rows=rows, metric=metric, analyses=[analysis]))
    dimension = out["analyses"][0]["dimensions"][0]
    baseline, variation = dimension["variations"]
    return {
        "srm_p_value": _float(dimension["srm"]),
        "control_mean": _float(baseline["stats"]["mean"]),
        "treatment_mean": _float(variation["stats"]["mean"]),
        "expected": _float(variation["expected"]),
        "ci": [_float(x) for x in variation["ci"]],
        "p_value": _float(variation["pValue"]),
        "error_message": variation["errorMessage"],
        "control_count": _float(baseline["stats"]["count"]),
        "treatment_count": _float(variation["stats"]["count"]),
        "control_stddev": _float(baseline["stats"]["stddev"]),
        "treatment_stddev": _float(variation["stats"]["stddev"]),
    }


def main(cases_path: str, results_path: str) -> None:
    with open(cases_path) as f:
        spec = json.load(f)
    results = {"cases": {}, "srm": {}}
    for case in spec.get("cases", []):
        results["cases"][case["id"]] = {
            route: {d: run(case, d) for d in DIFFERENCE_TYPES}
            for route, run in (("test", run_test), ("engine", run_engine))
        }
    for case in spec.get("srm", []):
        results["srm"][case["id"]] = _float(check_srm(case["users"], case["weights"]))
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
