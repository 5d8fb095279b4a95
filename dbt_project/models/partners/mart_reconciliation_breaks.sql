{{
    config(
        materialized='incremental',
        unique_key='break_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}

-- The history of every reconciliation break, one row per break_id: when it was first and last seen, and
-- whether it is still open. Each run compares the current breaks (int_reconciliation_breaks) with the
-- history: a current break is open (new, still open, or reopened when it had been resolved); an open break
-- absent from the current set is resolved by this run. Times are the runs' clock (when the pipeline saw it).

with

run as (

    select cast(current_timestamp as timestamptz) as observed_at

),

current_breaks as (

    select * from {{ ref('int_reconciliation_breaks') }}

),

{% if is_incremental() %}

history as (

    select * from {{ this }}

),

{% else %}

history as (

    -- first build: no history yet
    select
        cast(null as varchar) as break_id,
        cast(null as timestamptz) as first_seen_at,
        cast(null as varchar) as status,
        cast(null as timestamptz) as reopened_at,
        cast(null as integer) as times_reopened
    where false

),

{% endif %}

seen as (

    select
        current_breaks.break_id,
        current_breaks.partner,
        current_breaks.break_class,
        current_breaks.record_id,
        current_breaks.partner_txn_id,
        current_breaks.internal_id,
        current_breaks.break_date,
        current_breaks.partner_amount,
        current_breaks.internal_amount,
        current_breaks.amount_at_stake,
        current_breaks.detail,
        'open' as status,
        coalesce(history.first_seen_at, run.observed_at) as first_seen_at,
        run.observed_at as last_seen_at,
        cast(null as timestamptz) as resolved_at,
        case when history.status = 'resolved' then run.observed_at else history.reopened_at end as reopened_at,
        coalesce(history.times_reopened, 0) + case when history.status = 'resolved' then 1 else 0 end as times_reopened
    from current_breaks
    cross join run
    left join history on current_breaks.break_id = history.break_id

),

{% if is_incremental() %}

resolved as (

    -- open until now, absent from the current breaks
    select
        history.break_id,
        history.partner,
        history.break_class,
        history.record_id,
        history.partner_txn_id,
        history.internal_id,
        history.break_date,
        history.partner_amount,
        history.internal_amount,
        history.amount_at_stake,
        history.detail,
        'resolved' as status,
        history.first_seen_at,
        history.last_seen_at,
        run.observed_at as resolved_at,
        history.reopened_at,
        history.times_reopened
    from history
    cross join run
    where history.status = 'open'
      and not exists (select 1 from current_breaks where current_breaks.break_id = history.break_id)

),

{% else %}

resolved as (

    select * from seen where false

),

{% endif %}

changed as (

    select * from seen
    union all
    select * from resolved

),

final as (

    select
        changed.break_id,
        changed.partner,
        changed.break_class,
        changed.record_id,
        changed.partner_txn_id,
        changed.internal_id,
        changed.break_date,
        changed.partner_amount,
        changed.internal_amount,
        changed.amount_at_stake,
        changed.detail,
        changed.status,
        changed.first_seen_at,
        changed.last_seen_at,
        changed.resolved_at,
        changed.reopened_at,
        cast(changed.times_reopened as integer) as times_reopened,
        -- days open: until resolved, else until this run
        cast({{ epoch_seconds_between('changed.first_seen_at', 'coalesce(changed.resolved_at, run.observed_at)') }}
             / 86400.0 as double) as age_days
    from changed
    cross join run

)

select * from final
