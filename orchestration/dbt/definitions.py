import dagster as dg

from .assets import dbt_resource, pitwall_dbt_models

defs = dg.Definitions(assets=[pitwall_dbt_models], resources={"dbt": dbt_resource()})
