import dagster as dg

from .assets import oem_service_orders

defs = dg.Definitions(assets=[oem_service_orders])
