import dagster as dg

from .assets import published_warehouse

defs = dg.Definitions(assets=[published_warehouse])
