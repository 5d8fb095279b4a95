{#- Rounds of the one-to-one fallback assignment (see `fallback rounds` below); a candidate still contested
    after the last round stays unmatched. -#}
{%- set fallback_rounds = 6 -%}

-- One row per matched pair of a partner transaction and an internal record (docs/partners.md,
-- Reconciliation): first exact (shared ref = internal id; among several partner transactions with the same
-- ref the earliest created, then the smallest id, matches), then a fallback among what is still unmatched
-- on both sides (same vin, dates at most a day apart, amounts within the contract's tolerance, one-to-one,
-- best first by date gap, amount gap, partner id, internal id). Each pair carries the comparisons the
-- breaks are made of.

with

transactions as (

    select * from {{ ref('int_partner_transactions') }}

),

internal_records as (

    select * from {{ ref('int_partner_internal_records') }}

),

tolerances as (

    -- the contract's amountTolerance of the partner's reconciled dataset
    select partner, amount_tolerance_abs, amount_tolerance_rel
    from {{ source('partners', 'partner_contract_datasets') }}
    where amount_tolerance_abs is not null or amount_tolerance_rel is not null
    qualify row_number() over (partition by partner order by dataset) = 1

),

exact as (

    select
        transactions.partner,
        transactions.partner_txn_id,
        internal_records.internal_id
    from transactions
    inner join internal_records
        on transactions.partner = internal_records.partner
        and transactions.shared_ref = internal_records.internal_id
    qualify row_number() over (
        partition by transactions.partner, transactions.shared_ref
        order by transactions.created_at, transactions.partner_txn_id
    ) = 1

),

unmatched_transactions as (

    -- a transaction whose ref names an internal record is settled by the exact step (matched, or a
    -- duplicate of the one that matched); the others go to the fallback
    select transactions.*
    from transactions
    where not exists (
        select 1 from internal_records
        where internal_records.partner = transactions.partner
          and internal_records.internal_id = transactions.shared_ref
    )

),

unmatched_internal_records as (

    select internal_records.*
    from internal_records
    where not exists (
        select 1 from exact
        where exact.partner = internal_records.partner
          and exact.internal_id = internal_records.internal_id
    )

),

candidates_0 as (

    select
        unmatched_transactions.partner,
        unmatched_transactions.partner_txn_id,
        unmatched_internal_records.internal_id,
        abs({{ dbt.datediff('unmatched_internal_records.record_date', 'unmatched_transactions.txn_date', 'day') }}) as date_gap_days,
        abs(unmatched_transactions.amount - unmatched_internal_records.amount) as amount_gap
    from unmatched_transactions
    inner join unmatched_internal_records
        on unmatched_transactions.partner = unmatched_internal_records.partner
        and unmatched_transactions.vin = unmatched_internal_records.vin
    inner join tolerances on unmatched_transactions.partner = tolerances.partner
    where abs({{ dbt.datediff('unmatched_internal_records.record_date', 'unmatched_transactions.txn_date', 'day') }}) <= 1
      and {{ amount_within_tolerance('unmatched_transactions.amount', 'unmatched_internal_records.amount',
                                     'tolerances.amount_tolerance_abs', 'tolerances.amount_tolerance_rel') }}

),

{#- fallback rounds: the greedy one-to-one assignment, set-based. In each round a candidate pair that is the
    best (date gap, amount gap, partner id, internal id) for both its transaction and its internal record is
    exactly a pair the greedy assignment takes; taking those and dropping every other candidate of the same
    transaction or record, round after round, gives the greedy assignment. -#}
{% for round in range(fallback_rounds) %}
picked_{{ round }} as (

    select * from candidates_{{ round }}
    qualify row_number() over (
            partition by partner, partner_txn_id
            order by date_gap_days, amount_gap, partner_txn_id, internal_id
        ) = 1
        and row_number() over (
            partition by partner, internal_id
            order by date_gap_days, amount_gap, partner_txn_id, internal_id
        ) = 1

),

candidates_{{ round + 1 }} as (

    select * from candidates_{{ round }} as candidates
    where not exists (
        select 1 from picked_{{ round }} as picked
        where picked.partner = candidates.partner
          and (picked.partner_txn_id = candidates.partner_txn_id or picked.internal_id = candidates.internal_id)
    )

),
{% endfor %}

fallback as (

    {% for round in range(fallback_rounds) %}
    select partner, partner_txn_id, internal_id from picked_{{ round }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

pairs as (

    select partner, partner_txn_id, internal_id, 'exact' as match_method from exact
    union all
    select partner, partner_txn_id, internal_id, 'fallback' as match_method from fallback

),

final as (

    select
        pairs.partner,
        pairs.partner_txn_id,
        pairs.internal_id,
        pairs.match_method,
        transactions.shared_ref,
        transactions.vin,
        transactions.txn_date,
        internal_records.record_date,
        abs({{ dbt.datediff('internal_records.record_date', 'transactions.txn_date', 'day') }}) as date_gap_days,
        transactions.amount as partner_amount,
        internal_records.amount as internal_amount,
        transactions.amount - internal_records.amount as amount_difference,
        coalesce({{ amount_within_tolerance('transactions.amount', 'internal_records.amount',
                                            'tolerances.amount_tolerance_abs', 'tolerances.amount_tolerance_rel') }},
                 transactions.amount = internal_records.amount) as amount_within_tolerance,
        transactions.status as partner_status,
        transactions.status_normalized as partner_status_normalized,
        internal_records.status as internal_status,
        internal_records.status_normalized as internal_status_normalized,
        transactions.created_at as partner_created_at,
        internal_records.created_at as internal_created_at
    from pairs
    inner join transactions
        on pairs.partner = transactions.partner and pairs.partner_txn_id = transactions.partner_txn_id
    inner join internal_records
        on pairs.partner = internal_records.partner and pairs.internal_id = internal_records.internal_id
    left join tolerances on pairs.partner = tolerances.partner

)

select * from final
