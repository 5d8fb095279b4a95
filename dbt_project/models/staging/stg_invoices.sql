with

source as (

    select * from {{ source('ops', 'invoices') }}

),

renamed as (

    select
        ----------  ids
        invoice_id,
        job_id,
        customer_id,

        ----------  attributes
        currency,
        status,

        ----------  numerics
        amount,

        ----------  timestamps
        issued_at,
        paid_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('invoice_id') }}

)

select * from latest
