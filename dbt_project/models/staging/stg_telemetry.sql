with

source as (

    select * from {{ source('raw', 'telemetry') }}

),

renamed as (

    select
        ----------  ids
        vin,

        ----------  attributes
        dtc_codes,
        tire_pressure_kpa,

        ----------  numerics
        odometer_km,
        oil_life_pct,
        battery_voltage,
        coalesce({{ list_length('dtc_codes') }}, 0) as dtc_code_count,
        {{ list_min('tire_pressure_kpa') }} as min_tire_pressure_kpa,

        ----------  timestamps
        observed_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

deduplicated as (

    -- a snapshot delivered twice (a re-sent extract) counts once: keep its latest delivery
    select * from renamed
    qualify row_number() over (
        partition by vin, observed_at
        order by dt desc, landing_path desc, line_no desc
    ) = 1

)

select * from deduplicated
