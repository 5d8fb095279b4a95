import dagster as dg

from .assets import nba_model, recommendations

defs = dg.Definitions(assets=[nba_model, recommendations])
