with

source as (

    select * from {{ source('ops', 'vehicles') }}

),

renamed as (

    select
        ----------  ids
        vin,
        customer_id,

        ----------  attributes
        make,
        model,
        fuel_type,

        ----------  numerics
        model_year,

        ----------  timestamps
        created_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('vin') }}

)

select * from latest
