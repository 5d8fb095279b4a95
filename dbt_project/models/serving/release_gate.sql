-- The release gate: a serving table the mobile backend and the release managers read before widening a
-- staged rollout. One row per app × platform whose newest release is being rolled out, with a decision
-- and the evidence for it. The checks, their thresholds and the key routes live in the seed
-- release_gate_rules (one row per check), not here.
--
-- Being rolled out: the newest release of the app on the platform (releases ordered by their first
-- session, as mart_crash_groups orders them) whose first session is at most `release_gate_rollout_days`
-- (default 30) before evaluated_at. Store rollouts are staged over days to weeks; a release that has been
-- the newest for longer than that is simply the app, not a rollout.
--
-- Checks, each over everything the release did on the platform up to evaluated_at:
--   crash_free_sessions  sessions not crashed / sessions (mart_release_health's definition): halt under
--                        the app's halt threshold, rollback under its rollback threshold; not judged
--                        below min_samples sessions.
--   key_route_p95        per key route, the p95 client duration (fct_api_requests) on the release against
--                        the previous release of the same app on the same platform, relative
--                        (p95 / previous p95 − 1): halt above the halt threshold, rollback above the
--                        rollback threshold; a route is judged only when both releases have min_samples
--                        requests of it (a p95 of a handful of requests is noise).
-- Decision: rollback if any check says rollback, else halt if any says halt, else wait while the crash
-- check (or, with a previous release, every key route) lacks samples, else proceed.
--
-- "Now" is the var `as_of` when given (the same var review_prompt_eligibility reads), else the latest
-- session start: the moment the data describes, so a rebuild of the same data gives the same table.

with

as_of as (

    {% if var('as_of', none) %}
    select cast('{{ var("as_of") }}' as timestamptz) as evaluated_at
    {% else %}
    select max(started_at) as evaluated_at from {{ ref('fct_sessions') }}
    {% endif %}

),

rules as (

    select * from {{ ref('release_gate_rules') }}

),

sessions as (

    select s.session_id, s.app_namespace, s.platform, s.release, s.app_version, s.started_at, s.crashed
    from {{ ref('fct_sessions') }} as s
    cross join as_of
    where s.release is not null
        and s.started_at <= as_of.evaluated_at

),

releases as (

    select
        app_namespace,
        platform,
        release,
        min(app_version) as app_version,
        min(started_at) as first_session_at,
        count(*) as sessions,
        count_if(crashed) as crashed_sessions,
        row_number() over (
            partition by app_namespace, platform order by min(started_at) desc, release desc
        ) as recency
    from sessions
    group by app_namespace, platform, release

),

rollouts as (

    select
        newest.app_namespace,
        newest.platform,
        newest.release,
        newest.app_version,
        newest.first_session_at,
        newest.sessions,
        newest.crashed_sessions,
        previous.release as previous_release,
        previous.app_version as previous_app_version,
        as_of.evaluated_at
    from releases as newest
    cross join as_of
    left join releases as previous
        on previous.app_namespace = newest.app_namespace
        and previous.platform is not distinct from newest.platform
        and previous.recency = 2
    where newest.recency = 1
        and newest.first_session_at > {{ dbt.dateadd('day', -var('release_gate_rollout_days', 30), 'as_of.evaluated_at') }}

),

adoption as (

    -- the release's share of the app's users on the platform, on its latest day in the mart
    select release, platform, max_by(adoption_rate, day) as adoption_rate
    from {{ ref('mart_release_health') }}
    where day <= (select cast(evaluated_at as date) from as_of)
    group by release, platform

),

requests as (

    -- a request belongs to the release of the session that made it (an app version alone is shared by apps)
    select sessions.app_namespace, sessions.platform, sessions.release, requests.method, requests.route,
           requests.duration_ms
    from {{ ref('fct_api_requests') }} as requests
    inner join sessions on sessions.session_id = requests.session_id
    cross join as_of
    where requests.started_at <= as_of.evaluated_at

),

route_latency as (

    select
        rollouts.app_namespace,
        rollouts.platform,
        rules.method,
        rules.route,
        rules.halt_threshold,
        rules.rollback_threshold,
        rules.min_samples,
        count(case when requests.release = rollouts.release then 1 end) as requests,
        count(case when requests.release = rollouts.previous_release then 1 end) as baseline_requests,
        {{ percentile('case when requests.release = rollouts.release then requests.duration_ms end', 0.95) }}
            as p95_ms,
        {{ percentile('case when requests.release = rollouts.previous_release then requests.duration_ms end', 0.95) }}
            as baseline_p95_ms,
        rollouts.previous_release is null as has_no_baseline
    from rollouts
    inner join rules
        on rules.app_namespace = rollouts.app_namespace
        and rules.check_name = 'key_route_p95'
    left join requests
        on requests.app_namespace = rollouts.app_namespace
        and requests.platform is not distinct from rollouts.platform
        and requests.method = rules.method
        and requests.route = rules.route
        and requests.release in (rollouts.release, rollouts.previous_release)
    group by all

),

route_checks as (

    select
        *,
        p95_ms / baseline_p95_ms - 1 as p95_regression,
        case
            when has_no_baseline then 'no_baseline'
            when requests < min_samples or baseline_requests < min_samples then 'insufficient_samples'
            when p95_ms / baseline_p95_ms - 1 > rollback_threshold then 'rollback'
            when p95_ms / baseline_p95_ms - 1 > halt_threshold then 'halt'
            else 'pass'
        end as route_check
    from route_latency

),

route_ranked as (

    select
        *,
        method || ' ' || route as method_route,
        route_check in ('pass', 'halt', 'rollback') as is_judged,
        -- the route that drives the decision: the most severe outcome, then the largest regression
        row_number() over (
            partition by app_namespace, platform
            order by
                case route_check when 'rollback' then 3 when 'halt' then 2 when 'pass' then 1 else 0 end desc,
                p95_ms / baseline_p95_ms desc nulls last,
                method, route
        ) as severity_rank,
        -- "POST /v1/jobs/{id}/complete 1407 vs 507 ms (+177%, n 53/34)"
        method || ' ' || route || ' '
            || coalesce(cast(cast(round(p95_ms) as bigint) as varchar), '–') || ' vs '
            || coalesce(cast(cast(round(baseline_p95_ms) as bigint) as varchar), '–') || ' ms ('
            || coalesce(
                case when round(100 * (p95_ms / baseline_p95_ms - 1)) > 0 then '+' else '' end
                || cast(cast(round(100 * (p95_ms / baseline_p95_ms - 1)) as bigint) as varchar) || '%, ',
                '')
            || 'n ' || cast(requests as varchar) || '/' || cast(baseline_requests as varchar) || ')'
            as evidence
    from route_checks

),

latency as (

    select
        app_namespace,
        platform,
        count(*) as key_routes,
        count_if(is_judged) as key_routes_judged,
        sum(requests) as key_route_requests,
        sum(baseline_requests) as baseline_key_route_requests,
        case
            when count_if(route_check = 'rollback') > 0 then 'rollback'
            when count_if(route_check = 'halt') > 0 then 'halt'
            when bool_or(has_no_baseline) then 'no_baseline'
            when count_if(is_judged) = 0 then 'insufficient_samples'
            else 'pass'
        end as latency_check,
        {{ dbt.listagg("case when route_check in ('halt', 'rollback') then evidence end", "'; '",
                       "order by severity_rank") }} as failing_routes,
        {{ dbt.listagg("case when is_judged then evidence end", "'; '", "order by severity_rank") }}
            as route_evidence
    from route_ranked
    group by app_namespace, platform

),

worst_route as (

    select * from route_ranked where severity_rank = 1 and is_judged

),

checked as (

    select
        rollouts.*,
        adoption.adoption_rate,
        crash_rules.halt_threshold as crash_free_halt_below,
        crash_rules.rollback_threshold as crash_free_rollback_below,
        crash_rules.min_samples as min_sessions,
        1 - rollouts.crashed_sessions / rollouts.sessions as crash_free_sessions_rate,
        case
            when crash_rules.app_namespace is null then 'not_configured'
            when rollouts.sessions < crash_rules.min_samples then 'insufficient_samples'
            when 1 - rollouts.crashed_sessions / rollouts.sessions < crash_rules.rollback_threshold then 'rollback'
            when 1 - rollouts.crashed_sessions / rollouts.sessions < crash_rules.halt_threshold then 'halt'
            else 'pass'
        end as crash_check,
        coalesce(latency.latency_check, 'not_configured') as latency_check,
        coalesce(latency.key_routes, 0) as key_routes,
        coalesce(latency.key_routes_judged, 0) as key_routes_judged,
        coalesce(latency.key_route_requests, 0) as key_route_requests,
        coalesce(latency.baseline_key_route_requests, 0) as baseline_key_route_requests,
        latency.failing_routes,
        latency.route_evidence,
        worst_route.method_route as worst_route,
        worst_route.requests as worst_route_requests,
        worst_route.baseline_requests as worst_route_baseline_requests,
        worst_route.p95_ms as worst_route_p95_ms,
        worst_route.baseline_p95_ms as worst_route_baseline_p95_ms,
        worst_route.p95_regression as worst_route_p95_regression,
        worst_route.halt_threshold as p95_regression_halt_above,
        worst_route.rollback_threshold as p95_regression_rollback_above,
        worst_route.min_samples as min_requests
    from rollouts
    left join rules as crash_rules
        on crash_rules.app_namespace = rollouts.app_namespace
        and crash_rules.check_name = 'crash_free_sessions'
    left join adoption
        on adoption.release = rollouts.release
        and adoption.platform is not distinct from rollouts.platform
    left join latency
        on latency.app_namespace = rollouts.app_namespace
        and latency.platform is not distinct from rollouts.platform
    left join worst_route
        on worst_route.app_namespace = rollouts.app_namespace
        and worst_route.platform is not distinct from rollouts.platform

),

decided as (

    select
        *,
        case
            when crash_check = 'rollback' or latency_check = 'rollback' then 'rollback'
            when crash_check = 'halt' or latency_check = 'halt' then 'halt'
            when crash_check in ('insufficient_samples', 'not_configured')
                or latency_check = 'insufficient_samples' then 'wait'
            else 'proceed'
        end as decision,
        -- one sentence per check that stops the rollout; null when it may proceed
        concat_ws('; ',
            case when crash_check in ('halt', 'rollback') then
                'crash-free sessions ' || cast(cast(round(100 * crash_free_sessions_rate, 2) as decimal(5, 2)) as varchar)
                || '% under ' || cast(cast(round(100 * case crash_check when 'rollback' then crash_free_rollback_below
                                                                else crash_free_halt_below end, 2)
                                            as decimal(5, 2)) as varchar)
                || '% (' || crash_check || ')'
            end,
            case when crash_check = 'insufficient_samples' then
                'only ' || cast(sessions as varchar) || ' sessions (judged from ' || cast(min_sessions as varchar) || ')'
            end,
            case when crash_check = 'not_configured' then 'no crash_free_sessions rule for the app' end,
            case when latency_check in ('halt', 'rollback') then
                'p95 regression vs ' || previous_app_version || ': ' || failing_routes
            end,
            case when latency_check = 'insufficient_samples' then
                'no key route has enough requests on both releases yet'
            end
        ) as reasons
    from checked

)

select
    app_namespace,
    platform,
    release,
    app_version,
    decision,
    nullif(reasons, '') as reasons,
    first_session_at,
    adoption_rate,
    previous_release,
    previous_app_version,
    cast(sessions as bigint) as sessions,
    cast(crashed_sessions as bigint) as crashed_sessions,
    crash_free_sessions_rate,
    crash_free_halt_below,
    crash_free_rollback_below,
    min_sessions,
    crash_check,
    cast(key_routes as bigint) as key_routes,
    cast(key_routes_judged as bigint) as key_routes_judged,
    cast(key_route_requests as bigint) as key_route_requests,
    cast(baseline_key_route_requests as bigint) as baseline_key_route_requests,
    worst_route,
    cast(worst_route_requests as bigint) as worst_route_requests,
    cast(worst_route_baseline_requests as bigint) as worst_route_baseline_requests,
    worst_route_p95_ms,
    worst_route_baseline_p95_ms,
    worst_route_p95_regression,
    p95_regression_halt_above,
    p95_regression_rollback_above,
    min_requests,
    latency_check,
    route_evidence,
    evaluated_at
from decided
