import dagster as dg

from .assets import PARTNER_ASSETS, partner_contracts

defs = dg.Definitions(assets=[partner_contracts, *PARTNER_ASSETS.values()])
