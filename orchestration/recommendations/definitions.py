import dagster as dg

from .assets import nba_model, parts_suggestions, serving_recommendations, ui_layouts

defs = dg.Definitions(assets=[nba_model, serving_recommendations, parts_suggestions, ui_layouts])
