import dagster as dg

from .assets import PARTNER_ASSETS, partner_contracts, partner_sla_breaches
from .loading import API_CALLS_TABLE

# Every REST sync logs each HTTP attempt to this table as it loads the page (rest.py); the SLA models read it.
# Declared so it sits with the partner assets, not in an unnamed group.
partner_api_calls = dg.AssetSpec(["partners", API_CALLS_TABLE], group_name="partners", kinds={"duckdb"},
                                 description="Every HTTP attempt of the partners' REST syncs: status, latency, "
                                             "bytes (written by the REST partner assets as they load pages)")

defs = dg.Definitions(assets=[partner_contracts, *PARTNER_ASSETS.values(), partner_sla_breaches, partner_api_calls])
