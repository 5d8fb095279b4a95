{#-
    The partner-side definitions (docs/partners.md, Reconciliation), each written once and used by every
    model that needs it.
-#}

{#-
    keep_latest_partner_version(key, version): a QUALIFY clause keeping the latest version of each key of a
    partner record table: the highest contract version, then the latest updated_at, then the last load
    (loaded_at, landing_file, line_no). Expects the contract's updated_at and the connectors' load columns.
-#}
{%- macro keep_latest_partner_version(key, version) -%}
    {%- set keys = [key] if key is string else key -%}
qualify row_number() over (
        partition by {{ keys | join(', ') }}
        order by {{ version }} desc, updated_at desc, loaded_at desc, landing_file desc, line_no desc
    ) = 1
{%- endmacro -%}


{#-
    partner_status_normalized(partner, status): a partner's own status in the vocabulary both sides of the
    reconciliation share. oem: completed, invoiced → completed; cancelled → cancelled; else open.
    warranty: approved, partially_approved, paid → approved; rejected → rejected; else pending.
    roadside (the latest event's status): completed → completed; cancelled → cancelled; else open.
-#}
{%- macro partner_status_normalized(partner, status) -%}
    case
        when {{ partner }} = 'warranty' then case
            when {{ status }} in ('approved', 'partially_approved', 'paid') then 'approved'
            when {{ status }} = 'rejected' then 'rejected'
            else 'pending'
        end
        when {{ status }} in ('completed', 'invoiced') then 'completed'
        when {{ status }} = 'cancelled' then 'cancelled'
        else 'open'
    end
{%- endmacro -%}


{#-
    internal_status_normalized(partner, status): our own record's status in the same vocabulary.
    Bookings (oem, roadside): completed → completed; cancelled → cancelled; confirmed → open.
    Warranty claims: approved, paid → approved; rejected → rejected; submitted → pending.
-#}
{%- macro internal_status_normalized(partner, status) -%}
    case
        when {{ partner }} = 'warranty' then case
            when {{ status }} in ('approved', 'paid') then 'approved'
            when {{ status }} = 'rejected' then 'rejected'
            else 'pending'
        end
        when {{ status }} = 'completed' then 'completed'
        when {{ status }} = 'cancelled' then 'cancelled'
        else 'open'
    end
{%- endmacro -%}


{#-
    amount_within_tolerance(partner_amount, internal_amount, tolerance_abs, tolerance_rel): the contract's
    amountTolerance, |Δ| ≤ max(absolute, relative × internal amount). The one test of "the same amount".
-#}
{%- macro amount_within_tolerance(partner_amount, internal_amount, tolerance_abs, tolerance_rel) -%}
    (abs(cast({{ partner_amount }} as decimal(18, 4)) - cast({{ internal_amount }} as decimal(18, 4)))
        <= greatest(cast({{ tolerance_abs }} as decimal(18, 4)),
                    cast({{ tolerance_rel }} as decimal(18, 4)) * abs(cast({{ internal_amount }} as decimal(18, 4)))))
{%- endmacro -%}


{#-
    partner_load_metadata_columns(): the load metadata the partner connectors add to every record
    (landed file, position in it, connector run, load time), typed the one way staging exposes them.
-#}
{%- macro partner_load_metadata_columns() -%}
        cast(landing_file as varchar) as landing_file,
        cast(line_no as integer) as line_no,
        cast(sync_id as varchar) as sync_id,
        cast(loaded_at as timestamptz) as loaded_at
{%- endmacro -%}


{#-
    poisson_quantile(mean, p): the p-quantile of a Poisson distribution of this mean, the smallest k with
    P(X <= k) >= p (scipy.stats.poisson.ppf). What a day's record count is judged against when the counts
    are small: a count below the lower quantile (or above the upper) happens by chance with probability
    below p. Summed in log space over mean ± 12 standard deviations (the mass outside is below 1e-30);
    a mean of 0 (or null) gives 0 (or null). DuckDB.
-#}
{%- macro poisson_quantile(mean, p) -%}
    case when {{ mean }} = 0 then 0 else (
        select min(k) from (
            select
                k,
                sum(exp(k * ln({{ mean }}) - {{ mean }} - lgamma(k + 1))) over (order by k) as cumulative
            from range(
                cast(greatest(0, floor({{ mean }} - 12 * sqrt({{ mean }}) - 12)) as bigint),
                cast(ceil({{ mean }} + 12 * sqrt({{ mean }}) + 12) as bigint)
            ) as poisson_support (k)
        ) as poisson_cdf
        where cumulative >= {{ p }}
    ) end
{%- endmacro -%}
