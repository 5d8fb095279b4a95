with

source as (

    select * from {{ source('partners', 'partner_warranty_claim_status') }}

),

renamed as (

    select
        ----------  ids
        cast(partner_claim_id as varchar) as partner_claim_id,
        cast(record_version as integer) as record_version,

        ----------  attributes
        cast(adjudication_status as varchar) as adjudication_status,

        ----------  numerics
        cast(approved_amount as decimal(18, 4)) as approved_amount,

        ----------  timestamps
        cast(updated_at as timestamptz) as updated_at,

        ----------  load metadata
        {{ partner_load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_partner_version('partner_claim_id', 'record_version') }}

)

select * from latest
