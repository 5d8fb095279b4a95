import dagster as dg

from .assets import PARTNER_ASSETS, partner_contracts, partner_sla_breaches

defs = dg.Definitions(assets=[partner_contracts, *PARTNER_ASSETS.values(), partner_sla_breaches])
