with

source as (

    select * from {{ source('partners', 'partner_warranty_claims') }}

),

renamed as (

    select
        ----------  ids
        cast(partner_claim_id as varchar) as partner_claim_id,
        cast(record_version as integer) as record_version,
        cast(claim_ref as varchar) as claim_ref,
        cast(vin as varchar) as vin,

        ----------  attributes
        cast(adjudication_status as varchar) as adjudication_status,
        cast(currency as varchar) as currency,

        ----------  numerics
        cast(claimed_amount as decimal(18, 4)) as claimed_amount,
        cast(approved_amount as decimal(18, 4)) as approved_amount,

        ----------  dates and timestamps
        cast(repair_date as date) as repair_date,
        cast(adjudicated_at as timestamptz) as adjudicated_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(exported_at as timestamptz) as exported_at,

        ----------  load metadata
        cast(delivery_date as date) as delivery_date,
        {{ partner_load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_partner_version('partner_claim_id', 'record_version') }}

)

select * from latest
