import dagster as dg

from .assets import nba_model, parts_suggestions, serving_recommendations

defs = dg.Definitions(assets=[nba_model, serving_recommendations, parts_suggestions])
