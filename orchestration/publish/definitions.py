import dagster as dg

from .assets import publication_expectations, published_warehouse, staged_publication

defs = dg.Definitions(assets=[staged_publication, published_warehouse], asset_checks=[publication_expectations])
