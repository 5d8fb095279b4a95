-- The next-best actions with their value: the action catalog seed, and the price × margin of the service
-- each action sells (stg_service_catalog), so a price change in the backend moves the value.

select
    catalog.action_id,
    catalog.kind,
    catalog.audience,
    {{ split_to_list('catalog.placements', '|') }} as placements,
    catalog.service_id,
    cast(services.price * services.margin as decimal(18, 4)) as action_value,
    coalesce(catalog.min_vehicle_age_years, 0) as min_vehicle_age_years,
    coalesce(catalog.cooldown_days, 0) as cooldown_days,
    nullif(catalog.requires_dtc_family, '') as requires_dtc_family,
    nullif(catalog.excluded_fuel_type, '') as excluded_fuel_type,
    nullif(catalog.suppressed_by_recall, '') as suppressed_by_recall,
    nullif(catalog.due_reading, '') as due_reading,
    catalog.due_below,
    catalog.due_at_least,
    nullif(catalog.due_dtc_family, '') as due_dtc_family,
    catalog.reason_hint,
    catalog.description
from {{ ref('action_catalog') }} as catalog
left join {{ ref('stg_service_catalog') }} as services
    on services.service_id = catalog.service_id
