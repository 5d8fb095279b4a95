-- Reconciliation per partner and day (a transaction's day is its contract date field; an internal
-- record's, its date; a break's, the day of the record it is on): partner transactions, how many matched
-- exactly or by the fallback, the current breaks by class, and the open breaks with the amount at stake.

with

transactions as (

    select partner, txn_date as day, partner_txn_id from {{ ref('int_partner_transactions') }}

),

internal_records as (

    select partner, record_date as day, internal_id from {{ ref('int_partner_internal_records') }}

),

matches as (

    select partner, txn_date as day, match_method from {{ ref('int_reconciliation_matches') }}

),

breaks as (

    select partner, break_date as day, break_class, status, amount_at_stake
    from {{ ref('mart_reconciliation_breaks') }}

),

days as (

    select partner, day from transactions
    union
    select partner, day from internal_records
    union
    select partner, day from breaks

),

transaction_counts as (

    select partner, day, count(*) as transactions
    from transactions
    group by partner, day

),

internal_counts as (

    select partner, day, count(*) as internal_records
    from internal_records
    group by partner, day

),

match_counts as (

    select
        partner,
        day,
        count(case when match_method = 'exact' then 1 end) as matched_exact,
        count(case when match_method = 'fallback' then 1 end) as matched_fallback
    from matches
    group by partner, day

),

break_counts as (

    select
        partner,
        day,
        count(case when status = 'open' and break_class = 'missing_internal' then 1 end) as breaks_missing_internal,
        count(case when status = 'open' and break_class = 'missing_partner' then 1 end) as breaks_missing_partner,
        count(case when status = 'open' and break_class = 'amount_mismatch' then 1 end) as breaks_amount_mismatch,
        count(case when status = 'open' and break_class = 'status_mismatch' then 1 end) as breaks_status_mismatch,
        count(case when status = 'open' and break_class = 'duplicate' then 1 end) as breaks_duplicate,
        count(case when status = 'open' then 1 end) as open_breaks,
        count(case when status = 'resolved' then 1 end) as resolved_breaks,
        sum(case when status = 'open' then amount_at_stake else 0 end) as amount_at_stake
    from breaks
    group by partner, day

),

final as (

    select
        days.partner,
        days.day,
        coalesce(transaction_counts.transactions, 0) as transactions,
        coalesce(internal_counts.internal_records, 0) as internal_records,
        coalesce(match_counts.matched_exact, 0) as matched_exact,
        coalesce(match_counts.matched_fallback, 0) as matched_fallback,
        coalesce(break_counts.breaks_missing_internal, 0) as breaks_missing_internal,
        coalesce(break_counts.breaks_missing_partner, 0) as breaks_missing_partner,
        coalesce(break_counts.breaks_amount_mismatch, 0) as breaks_amount_mismatch,
        coalesce(break_counts.breaks_status_mismatch, 0) as breaks_status_mismatch,
        coalesce(break_counts.breaks_duplicate, 0) as breaks_duplicate,
        coalesce(break_counts.open_breaks, 0) as open_breaks,
        coalesce(break_counts.resolved_breaks, 0) as resolved_breaks,
        cast(coalesce(break_counts.amount_at_stake, 0) as decimal(18, 4)) as amount_at_stake
    from days
    left join transaction_counts on days.partner = transaction_counts.partner and days.day = transaction_counts.day
    left join internal_counts on days.partner = internal_counts.partner and days.day = internal_counts.day
    left join match_counts on days.partner = match_counts.partner and days.day = match_counts.day
    left join break_counts on days.partner = break_counts.partner and days.day = break_counts.day

)

select * from final
