with

source as (

    select * from {{ source('partners', 'partner_oem_recall_campaigns') }}

),

renamed as (

    select
        ----------  ids
        cast(campaign_id as varchar) as campaign_id,
        cast(vin as varchar) as vin,
        cast(version as integer) as version,

        ----------  attributes
        cast(component as varchar) as component,
        cast(severity as varchar) as severity,
        cast(remedy_status as varchar) as remedy_status,

        ----------  timestamps
        cast(published_at as timestamptz) as published_at,
        cast(updated_at as timestamptz) as updated_at,

        ----------  load metadata
        {{ partner_load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_partner_version(['campaign_id', 'vin'], 'version') }}

)

select * from latest
