with

source as (

    select * from {{ source('ops', 'customers') }}

),

renamed as (

    select
        ----------  ids
        customer_id,

        ----------  attributes
        -- the raw email stays in the raw layer: a hash to join on, a mask to show
        {{ sha256("lower(trim(email))") }} as email_sha256,
        case
            when email like '%_@_%'
                then left(lower(trim(email)), 1) || '***@' || split_part(lower(trim(email)), '@', 2)
        end as email_masked,
        full_name,
        region,
        segment,

        ----------  timestamps
        created_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('customer_id') }}

)

select * from latest
