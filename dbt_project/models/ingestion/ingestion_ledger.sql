-- One row per ingested landing file (version), with its counts: the proof that no record was dropped.
with

source as (

    select * from {{ source('ingestion', 'ledger') }}

),

renamed as (

    select
        ----------  ids
        source,
        landing_path,
        sha256,
        raw_path,
        run_id,

        ----------  attributes
        quarantined_by_reason,
        file_error,
        extra_columns,

        ----------  numerics
        size_bytes,
        mtime_ns,
        lines_read,
        records_read,
        records_loaded,
        records_quarantined,

        ----------  timestamps
        try_cast(dt as date) as dt,
        ingested_at

    from source

)

select * from renamed
