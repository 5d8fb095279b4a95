"""The verdict on one experiment × metric × treatment row of `mart_experiment_results`: the one definition,
computed here (warehouse-side) and read as is by the Experiments page, which never recomputes it.

In order, the first that applies:
1. sample-ratio mismatch (`srm_flag`): the exposures are not split as the weights say, so no comparison of
   the arms can be trusted: "invalid: sample ratio mismatch", never better, worse or a regressed guardrail;
2. an arm with zero variance (`zero_variance_arm`, gbstats' `_has_zero_variance`: e.g. a metric that dropped
   to 0 for every user of one arm): nothing can be tested, and that is flagged, "flagged: zero variance in
   the treatment" (or control, or both arms). A guardrail whose treatment moved the bad way from the control
   in that case is a regressed guardrail: a crash-free rate that fell to 0 must not read "inconclusive";
3. no interval at all (fewer than 2 users in an arm, a zero denominator, too few events for a quantile):
   "no result: <the reason>";
4. otherwise the decision interval says it: its whole range on the metric's good side "significantly
   better", on its bad side "significantly worse", else "inconclusive". The decision interval is the first
   of these that exists: the CUPED-adjusted relative lift, the relative lift (gbstats' default difference
   type; both need a control mean > 0, as in gbstats), the CUPED-adjusted absolute lift, the absolute lift
   (CUPED only where θ ≠ 0: with θ = 0 it is the plain estimate, and the basis says so).
   `decision_basis` names it, and `decision_lift`, `decision_ci_low`, `decision_ci_high` and
   `decision_p_value` (that test's own p-value, < alpha exactly when the interval excludes 0) are what a
   reader shows beside the verdict, so the verdict never contradicts the interval shown with it.
`significant` is the verdict's (better or worse), so it too is false under a sample-ratio mismatch.
"""

from __future__ import annotations

import polars as pl

SRM_VERDICT = "invalid: sample ratio mismatch"
BETTER, WORSE, INCONCLUSIVE = "significantly better", "significantly worse", "inconclusive"

# (column prefix, difference type): the decision interval is the first with both bounds.
_BASES = (("cuped_", "relative"), ("", "relative"), ("cuped_", "absolute"), ("", "absolute"))
_P_VALUE = {"relative": "relative_p_value", "absolute": "p_value"}

VERDICT_SCHEMA = {
    "decision_basis": pl.String, "decision_lift": pl.Float64, "decision_ci_low": pl.Float64,
    "decision_ci_high": pl.Float64, "decision_p_value": pl.Float64, "zero_variance_flag": pl.Boolean,
    "significant": pl.Boolean, "significantly_better": pl.Boolean, "significantly_worse": pl.Boolean, "guardrail_regressed": pl.Boolean,
    "verdict": pl.String,
}


def _decision_interval(row: dict) -> tuple[str | None, float | None, float | None, float | None, float | None]:
    adjusted = bool(row.get("cuped_theta"))  # θ = 0 (no pre-period signal): CUPED is the plain estimate
    for prefix, kind in _BASES:
        if prefix and not adjusted:
            continue
        low, high = row.get(f"{prefix}{kind}_ci_low"), row.get(f"{prefix}{kind}_ci_high")
        if low is not None and high is not None:
            basis = f"{'CUPED ' if prefix else ''}{kind}"
            return basis, row[f"{prefix}{kind}_lift"], low, high, row.get(f"{prefix}{_P_VALUE[kind]}")
    return None, None, None, None, None


def decide(row: dict) -> dict:
    """The verdict columns (VERDICT_SCHEMA) of one results row, which needs `srm_flag`, `zero_variance_arm`,
    `error`, `higher_is_better`, `is_guardrail`, the arms' means and the lifts and intervals of results_frame."""
    basis, lift, low, high, p = _decision_interval(row)
    higher_is_better = bool(row["higher_is_better"])
    zero_variance = row.get("zero_variance_arm") is not None
    better = worse = regressed = False
    if row["srm_flag"]:
        verdict = SRM_VERDICT
    elif zero_variance:
        arm = {"both": "both arms", "control": "the control", "treatment": "the treatment"}[row["zero_variance_arm"]]
        verdict = f"flagged: zero variance in {arm}"
        control, treatment = row.get("control_mean"), row.get("treatment_mean")
        if control is not None and treatment is not None and treatment != control:
            regressed = bool(row["is_guardrail"]) and ((treatment < control) == higher_is_better)
    elif basis is None:
        verdict = f"no result: {row.get('error') or 'no interval'}"
    else:
        above, below = low > 0, high < 0
        better = above if higher_is_better else below
        worse = below if higher_is_better else above
        verdict = BETTER if better else WORSE if worse else INCONCLUSIVE
        regressed = bool(row["is_guardrail"]) and worse
    return {
        "decision_basis": basis, "decision_lift": lift, "decision_ci_low": low, "decision_ci_high": high,
        "decision_p_value": p, "zero_variance_flag": zero_variance, "significant": better or worse,
        "significantly_better": better,
        "significantly_worse": worse, "guardrail_regressed": regressed, "verdict": verdict,
    }


def with_verdicts(results: pl.DataFrame) -> pl.DataFrame:
    """`results` with the verdict columns of `decide`, replacing any it had: `significant` becomes the
    verdict's (better or worse), no longer results_frame's Welch p_value < alpha, and `cuped_significant` is
    false under a sample-ratio mismatch, so no column of a mismatched experiment reads significant."""
    decided = pl.DataFrame([decide(r) for r in results.iter_rows(named=True)], schema=VERDICT_SCHEMA, orient="row")
    out = pl.concat([results.drop([c for c in VERDICT_SCHEMA if c in results.columns]), decided], how="horizontal")
    if "cuped_significant" in out.columns:
        out = out.with_columns(cuped_significant=pl.col("cuped_significant") & pl.col("srm_flag").not_())
    return out
