-- Every landing file is accounted for: each record read was either loaded or quarantined.
select
    source,
    landing_path,
    sha256,
    records_read,
    records_loaded,
    records_quarantined
from {{ ref('ingestion_ledger') }}
where records_read <> records_loaded + records_quarantined
