-- Training rows for the next-best-action model: one row per logged exposure whose 7-day outcome is known,
-- with the point-in-time features of its (customer, vehicle, action) as of the day it was shown. The
-- label is the exposure's outcome (accepted within 7 days); nobody who was not shown the action gets a
-- label.

select
    exposures.exposure_id,
    exposures.placement,
    exposures.shown_at,
    exposures.model_version as logged_model_version,
    cast(exposures.accepted as integer) as label,
    features.* exclude (purpose)
from {{ ref('int_recommendation_exposures') }} as exposures
inner join {{ ref('fct_nba_features') }} as features
    on features.purpose = 'training'
    and features.user_id = exposures.user_id
    and features.vin = exposures.vin
    and features.action_id = exposures.action_id
    and features.as_of_date = exposures.as_of_date
where exposures.label_complete
