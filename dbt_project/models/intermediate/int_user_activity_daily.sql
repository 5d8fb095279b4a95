-- Who was active when: one row per user × app × platform × day with a session, by fct_sessions.user_key.

select distinct
    user_key,
    app_namespace,
    platform,
    role,
    cast(started_at as date) as day
from {{ ref('fct_sessions') }}
where user_key is not null
