"""Experiment analysis: GrowthBook-style frequentist results from the warehouse's per-variation summary
statistics (`orchestration.experiments.stats`, checked against gbstats 0.8.0)."""
