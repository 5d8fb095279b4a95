-- Feature requests (Segment `feature_request_submitted`), deduplicated and tagged with a topic.
-- The same user asking for the same thing again (same text once case and spacing are normalized) is one
-- request, counted when first asked. The topic is the first pattern of the feature_request_topics seed
-- (by priority) the text matches, else 'other'.

with

submitted as (

    select
        message_id,
        user_id,
        anonymous_id,
        app_namespace,
        occurred_at,
        trim({{ json_str('properties', 'text') }}) as request_text
    from {{ ref('stg_events') }}
    where event_name = 'feature_request_submitted'

),

normalized as (

    select
        *,
        lower(regexp_replace(request_text, '\s+', ' ', 'g')) as normalized_text,
        coalesce(user_id, 'anonymous:' || anonymous_id) as requester
    from submitted

),

first_asked as (

    select * from normalized
    qualify row_number() over (
        partition by requester, app_namespace, normalized_text order by occurred_at, message_id
    ) = 1

),

tagged as (

    select
        first_asked.message_id,
        min_by(topics.topic, topics.priority) as topic
    from first_asked
    inner join {{ ref('feature_request_topics') }} as topics
        on regexp_matches(first_asked.request_text, topics.pattern, 'i')
    group by first_asked.message_id

)

select
    first_asked.message_id,
    first_asked.requester,
    first_asked.user_id,
    first_asked.app_namespace,
    first_asked.occurred_at,
    first_asked.request_text,
    first_asked.normalized_text,
    coalesce(tagged.topic, 'other') as topic
from first_asked
left join tagged
    on tagged.message_id = first_asked.message_id
