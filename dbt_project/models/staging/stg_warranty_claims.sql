with

source as (

    select * from {{ source('ops', 'warranty_claims') }}

),

renamed as (

    select
        ----------  ids
        claim_id,
        job_id,
        customer_id,
        vin,

        ----------  attributes
        currency,
        status,

        ----------  numerics
        amount,

        ----------  timestamps
        repair_date,
        submitted_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('claim_id') }}

)

select * from latest
