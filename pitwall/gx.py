"""Great Expectations, imported once for every caller (partner loading, contracts, the publish's checks).

GX probes its optional Spark integration when it is imported; PySpark is installed here for the Spark engine
(PITWALL_ENGINE=spark) and, once imported, warns that it does not support pandas 3 yet. The DuckDB path never
runs Spark, so that one warning is kept out of its logs; every other warning of the import still shows.
"""

from __future__ import annotations

import warnings
from types import ModuleType


def great_expectations() -> ModuleType:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        import great_expectations as gx
    return gx
