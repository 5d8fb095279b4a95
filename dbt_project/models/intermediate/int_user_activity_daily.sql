-- Who was active when: one row per user × app × platform × day with a session. A user is the
-- identified user, else the anonymous id, else the device (the same key everywhere engagement is counted).

select distinct
    coalesce(user_id, anonymous_id, device_id) as user_key,
    app_namespace,
    platform,
    role,
    cast(started_at as date) as day
from {{ ref('fct_sessions') }}
where coalesce(user_id, anonymous_id, device_id) is not null
