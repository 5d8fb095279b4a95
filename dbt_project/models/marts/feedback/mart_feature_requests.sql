-- Feature requests per ISO week (Monday) × app × topic: deduplicated requests (int_feature_requests),
-- the people who asked, and the most frequent wording as an example (ties: the first alphabetically).

with

requests as (

    select
        cast(date_trunc('week', occurred_at) as date) as week_start,
        app_namespace,
        topic,
        requester,
        request_text
    from {{ ref('int_feature_requests') }}

),

wordings as (

    select week_start, app_namespace, topic, request_text, count(*) as times
    from requests
    group by all

),

examples as (

    select week_start, app_namespace, topic, request_text as example_text
    from wordings
    qualify row_number() over (
        partition by week_start, app_namespace, topic order by times desc, request_text
    ) = 1

)

select
    requests.week_start,
    requests.app_namespace,
    requests.topic,
    cast(count(*) as bigint) as requests,
    cast(count(distinct requests.requester) as bigint) as users,
    any_value(examples.example_text) as example_text
from requests
left join examples
    on examples.week_start = requests.week_start
    and examples.app_namespace is not distinct from requests.app_namespace
    and examples.topic = requests.topic
group by all
