-- Every answered in-app survey (Segment `survey_responded`), one row per clean event: NPS (0-10, asked in
-- a session) and CSAT (1-5, about a completed job). A response whose score is missing, not a whole
-- number or out of its survey's scale is kept with is_valid_score = false, so the marts can count it
-- instead of losing it.

with

responses as (

    select
        message_id,
        user_id,
        app_namespace,
        app_version,
        platform,
        occurred_at,
        lower({{ json_str('properties', 'survey_type') }}) as survey_type,
        {{ json_str('properties', 'score') }} as score_text,
        {{ json_str('properties', 'job_id') }} as job_id
    from {{ ref('stg_events') }}
    where event_name = 'survey_responded'

),

scored as (

    select
        *,
        try_cast(score_text as double) as score_number
    from responses

)

select
    scored.message_id,
    scored.user_id,
    scored.app_namespace,
    apps.role,
    scored.app_version,
    scored.platform,
    scored.occurred_at,
    scored.survey_type,
    scored.job_id,
    cast(case when scored.score_number = floor(scored.score_number) then scored.score_number end as integer) as score,
    coalesce(
        scored.score_number = floor(scored.score_number)
        and (
            (scored.survey_type = 'nps' and scored.score_number between 0 and 10)
            or (scored.survey_type = 'csat' and scored.score_number between 1 and 5)
        ),
        false
    ) as is_valid_score
from scored
left join {{ ref('apps') }} as apps
    on apps.app_namespace = scored.app_namespace
