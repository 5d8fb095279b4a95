import dagster as dg

from .assets import experiment_definitions, experiment_marts

defs = dg.Definitions(assets=[experiment_definitions, experiment_marts])
