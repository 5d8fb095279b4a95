{#- A vehicle's condition as telemetry showed it before each as-of date: the latest readings of the last
    30 days, the battery trend (last 7 days against the 23 before), the usual daily distance, and the
    trouble-code families seen in the last 7 days (dtc_families seed). `vehicle_days` is a relation with
    vin, as_of_date and cutoff (the as-of date's midnight UTC, as timestamptz); one row per (vin, as_of_date)
    with at least one reading, so callers left join and treat a missing row as an unconnected vehicle.
    The one definition of these features: next-best-action and parts suggestions both use it. -#}
{% macro vehicle_condition_as_of(vehicle_days) %}
    with

    readings as (

        select
            vehicle_days.vin,
            vehicle_days.as_of_date,
            telemetry.observed_at,
            telemetry.odometer_km,
            telemetry.oil_life_pct,
            telemetry.battery_voltage,
            telemetry.min_tire_pressure_kpa,
            telemetry.dtc_codes,
            telemetry.observed_at >= vehicle_days.cutoff - interval 7 day as in_last_7_days
        from {{ vehicle_days }} as vehicle_days
        inner join {{ ref('stg_telemetry') }} as telemetry
            on telemetry.vin = vehicle_days.vin
            and telemetry.observed_at < vehicle_days.cutoff
            and telemetry.observed_at >= vehicle_days.cutoff - interval 30 day

    ),

    dtc_seen as (

        select readings.vin, readings.as_of_date, families.family
        from readings
        cross join unnest(readings.dtc_codes) as codes(code)
        inner join {{ ref('dtc_families') }} as families
            on starts_with(codes.code, families.code_prefix)
        where readings.in_last_7_days

    ),

    telemetry_features as (

        select
            readings.vin,
            readings.as_of_date,
            arg_max(readings.odometer_km, readings.observed_at) as odometer_km,
            arg_max(readings.oil_life_pct, readings.observed_at) as oil_life_pct,
            arg_max(readings.battery_voltage, readings.observed_at) as battery_voltage,
            arg_max(readings.min_tire_pressure_kpa, readings.observed_at) as min_tire_pressure_kpa,
            -- averaged as exact decimals: a sum of doubles depends on the order DuckDB's threads add them in,
            -- and the difference of two averages near 12 V kept that noise, so each rebuild of the same
            -- readings changed the trend's last bits (and the models' training fingerprints with them)
            avg(cast(readings.battery_voltage as decimal(18, 9))) filter (where readings.in_last_7_days)
                - avg(cast(readings.battery_voltage as decimal(18, 9))) filter (where not readings.in_last_7_days)
                as battery_voltage_trend_7d,
            (max(readings.odometer_km) - min(readings.odometer_km))
                / greatest({{ epoch_seconds_between('min(readings.observed_at)', 'max(readings.observed_at)') }} / 86400.0, 1.0)
                as daily_km_30d,
            max(readings.observed_at) as last_reading_at
        from readings
        group by readings.vin, readings.as_of_date

    ),

    dtc_features as (

        select
            vin,
            as_of_date,
            bool_or(family = 'battery') as dtc_battery_7d,
            bool_or(family = 'brakes') as dtc_brakes_7d,
            list_sort(list_distinct(list(family))) as dtc_families_7d,
            count(*) as dtc_codes_7d
        from dtc_seen
        group by vin, as_of_date

    )

    select
        telemetry_features.*,
        dtc_features.dtc_battery_7d,
        dtc_features.dtc_brakes_7d,
        dtc_features.dtc_families_7d,
        dtc_features.dtc_codes_7d
    from telemetry_features
    left join dtc_features
        on dtc_features.vin = telemetry_features.vin and dtc_features.as_of_date = telemetry_features.as_of_date
{% endmacro %}
