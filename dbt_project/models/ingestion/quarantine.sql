-- Every rejected record, across sources and runs: what it was, where it came from, and why.
with

source as (

    select * from {{ source('ingestion', 'quarantine') }}

),

renamed as (

    select
        ----------  ids
        source,
        landing_path,
        line_no,
        record_index,
        run_id,

        ----------  attributes
        reason_code,
        reason,
        raw_text,

        ----------  numerics
        raw_bytes,

        ----------  timestamps
        try_cast(dt as date) as dt,
        ingested_at

    from source

)

select * from renamed
