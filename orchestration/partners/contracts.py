"""Partner data contracts (``contracts/partners/*.odcs.yaml``, ODCS v3.1.0): loaded, checked, and turned into
what the connectors need.

This module is the one place the rest of the code learns a partner's datasets, columns, physical tables, keys,
enums, patterns, SLAs and env var names. ``load_contracts()`` checks every file (the ODCS subset Pitwall
relies on, with JSON Schema, then the things a schema cannot say: key positions, regexes that compile, DuckDB
types that exist, SLA elements that name a dataset and column) and fails with a ``ContractError`` naming the
file and the field. ``gx_suite(dataset)`` generates the Great Expectations suite every load is validated with;
``write_contract_tables(con)`` writes the SLA terms for dbt's SLA marts.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import yaml

from pitwall import paths
from pitwall.duck import connect

CONTRACTS_DIR = paths.PROJECT_ROOT / "contracts" / "partners"
ODCS_VERSION = "v3.1.0"
LOGICAL_TYPES = ("string", "integer", "number", "boolean", "date", "timestamp")
CONNECTORS = ("rest", "file", "webhook")
MAX_PAGE_SIZE = 10_000  # records per REST page a contract may ask for (a page is held whole in memory)

# What Pitwall reads from a contract, as JSON Schema (a subset of ODCS v3.1.0 plus our customProperties).
_CUSTOM_PROPERTIES = {
    "type": "array",
    "items": {"type": "object", "required": ["property"], "properties": {"property": {"type": "string"}}},
}
_PROPERTY_SCHEMA = {
    "type": "object",
    "required": ["name", "logicalType", "physicalType"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "logicalType": {"enum": list(LOGICAL_TYPES)},
        "physicalType": {"type": "string"},
        "required": {"type": "boolean"},
        "primaryKey": {"type": "boolean"},
        "primaryKeyPosition": {"type": "integer", "minimum": 1},
        "logicalTypeOptions": {
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "minimum": {"type": "number"},
                           "maximum": {"type": "number"}},
        },
        "quality": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["metric"],
                "properties": {
                    "metric": {"type": "string"},
                    "arguments": {"type": "object",
                                  "properties": {"validValues": {"type": "array", "minItems": 1}}},
                },
            },
        },
        "customProperties": _CUSTOM_PROPERTIES,
    },
}
CONTRACT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "id", "version", "status", "dataProduct", "schema", "customProperties"],
    "properties": {
        "apiVersion": {"const": ODCS_VERSION},
        "kind": {"const": "DataContract"},
        "id": {"type": "string"},
        "dataProduct": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "customProperties": _CUSTOM_PROPERTIES,
        "slaProperties": {
            "type": "array",
            "items": {"type": "object", "required": ["property", "value", "element"],
                      "properties": {"property": {"type": "string"}, "unit": {"type": "string"},
                                     "element": {"type": "string"}}},
        },
        "schema": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "physicalName", "properties"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    "physicalName": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    "customProperties": _CUSTOM_PROPERTIES,
                    "properties": {"type": "array", "minItems": 1, "items": _PROPERTY_SCHEMA},
                },
            },
        },
    },
}


class ContractError(ValueError):
    """A contract file that does not say what the connectors need; the message names the file and field."""

    def __init__(self, path: Path, where: str, problem: str):
        super().__init__(f"{path.name}: {where}: {problem}")
        self.path, self.where, self.problem = path, where, problem


@dataclass(frozen=True)
class Property:
    name: str
    logical_type: str
    physical_type: str
    required: bool = False
    primary_key_position: int | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    valid_values: tuple | None = None
    wire_type: str | None = None  # "decimal_string": a number the partner sends as a JSON string

    @property
    def wire_is_text(self) -> bool:
        """Whether the frame a load validates keeps the partner's text (the pattern is a rule on that text)."""
        return self.logical_type == "string" or self.wire_type == "decimal_string"


@dataclass(frozen=True)
class Sla:
    partner: str
    dataset: str
    property: str
    value: Any
    unit: str | None
    column: str | None  # the element's column, when it names one (dataset.column)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: contracts are loaded once per process
class Dataset:
    partner: str
    partner_id: str
    name: str
    physical_name: str
    properties: tuple[Property, ...]
    custom: dict = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.properties)

    def prop(self, name: str) -> Property:
        return next(p for p in self.properties if p.name == name)

    @property
    def primary_key(self) -> tuple[str, ...]:
        keyed = sorted((p.primary_key_position, p.name) for p in self.properties if p.primary_key_position)
        return tuple(name for _, name in keyed)

    @property
    def version_field(self) -> str | None:
        return self.custom.get("versionField")

    @property
    def updated_field(self) -> str | None:
        return self.custom.get("updatedField")

    @property
    def id_fields(self) -> tuple[str, ...]:
        """The record's identity: the primary key minus the version (a REST cursor orders by these)."""
        return tuple(c for c in self.primary_key if c != self.version_field)

    @property
    def endpoint(self) -> str | None:
        return self.custom.get("endpoint")

    @property
    def page_size(self) -> int | None:
        """Records per page to ask the REST endpoint for (customProperties pageSize, the partner's documented
        maximum: each page is one request, one Great Expectations validation and one commit)."""
        return self.custom.get("pageSize")

    @property
    def file(self) -> dict | None:
        return self.custom.get("file")

    @property
    def connector(self) -> str:
        if self.endpoint:
            return "rest"
        return "webhook" if self.file["format"] == "jsonl" else "file"

    @property
    def volume_date_field(self) -> str | None:
        return self.custom.get("volumeDateField")

    @property
    def delivery_date_column(self) -> str | None:
        """A volume date the partner does not send: the connector adds it (the file's ``dt=`` day)."""
        field_name = self.volume_date_field
        return field_name if field_name and field_name not in self.columns else None


@dataclass(frozen=True, eq=False)
class Contract:
    path: Path
    id: str
    version: str
    partner: str  # the contract's dataProduct: oem, warranty, roadside
    partner_id: str  # what the apps log: oem_network, ...
    datasets: dict[str, Dataset]
    slas: tuple[Sla, ...]
    custom: dict = field(default_factory=dict)

    @property
    def url_env(self) -> str | None:
        return self.custom.get("urlEnv")

    @property
    def api_key_env(self) -> str | None:
        return self.custom.get("apiKeyEnv")

    @property
    def secret_env(self) -> str | None:
        return self.custom.get("secretEnv")


# -- loading and checking ---------------------------------------------------------------------------------

def _custom(items: list[dict] | None) -> dict:
    return {item["property"]: item.get("value") for item in items or ()}


def _where(path_items) -> str:
    out = ""
    for item in path_items:
        out += f"[{item}]" if isinstance(item, int) else f".{item}" if out else str(item)
    return out or "(top level)"


def _check_type(con, path: Path, where: str, physical_type: str) -> None:
    try:
        con.execute(f"select cast(null as {physical_type})").fetchall()
    except Exception as exc:  # DuckDB's parser and binder errors have no common public base
        raise ContractError(path, where, f"physicalType {physical_type!r} is not a DuckDB type ({exc})") from exc


def _property(path: Path, where: str, raw: dict) -> Property:
    options = raw.get("logicalTypeOptions") or {}
    pattern = options.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ContractError(path, f"{where}.logicalTypeOptions.pattern", f"not a regex: {exc}") from exc
    valid_values = None
    for i, rule in enumerate(raw.get("quality") or ()):
        if rule["metric"] != "invalidValues" or "validValues" not in (rule.get("arguments") or {}):
            raise ContractError(path, f"{where}.quality[{i}]",
                                "only invalidValues rules with arguments.validValues are enforced")
        valid_values = tuple(rule["arguments"]["validValues"])
    custom = _custom(raw.get("customProperties"))
    if raw.get("primaryKey") and not raw.get("primaryKeyPosition"):
        raise ContractError(path, where, "primaryKey without primaryKeyPosition")
    return Property(
        name=raw["name"], logical_type=raw["logicalType"], physical_type=raw["physicalType"],
        required=bool(raw.get("required")) or bool(raw.get("primaryKey")),
        primary_key_position=raw.get("primaryKeyPosition") if raw.get("primaryKey") else None,
        pattern=pattern, minimum=options.get("minimum"), maximum=options.get("maximum"),
        valid_values=valid_values, wire_type=custom.get("wireType"),
    )


def load_contract(path: Path) -> Contract:
    """Read and check one contract file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(path, "(file)", f"not YAML: {exc}") from exc
    errors = sorted(jsonschema.Draft202012Validator(CONTRACT_SCHEMA).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        raise ContractError(path, _where(first.absolute_path), first.message)
    custom = _custom(raw["customProperties"])
    partner = raw["dataProduct"]
    if not custom.get("partnerId"):
        raise ContractError(path, "customProperties", "no partnerId")
    datasets: dict[str, Dataset] = {}
    con = connect()
    try:
        for i, schema in enumerate(raw["schema"]):
            where = f"schema[{i}]"
            props = []
            for j, prop in enumerate(schema["properties"]):
                _check_type(con, path, f"{where}.properties[{j}]({prop['name']}).physicalType", prop["physicalType"])
                props.append(_property(path, f"{where}.properties[{j}]({prop['name']})", prop))
            names = [p.name for p in props]
            if len(set(names)) != len(names):
                raise ContractError(path, f"{where}.properties", f"duplicate property names in {names}")
            positions = sorted(p.primary_key_position for p in props if p.primary_key_position)
            if positions != list(range(1, len(positions) + 1)):
                raise ContractError(path, f"{where}.properties",
                                    f"primaryKeyPosition must run 1..n, got {positions or 'no primary key'}")
            dataset = Dataset(partner, custom["partnerId"], schema["name"], schema["physicalName"], tuple(props),
                              _custom(schema.get("customProperties")))
            if not dataset.endpoint and not dataset.file:
                raise ContractError(path, f"{where}.customProperties",
                                    "neither endpoint (REST) nor file (file drop, webhook lines) is set")
            if dataset.endpoint and not custom.get("urlEnv"):
                raise ContractError(path, "customProperties", f"{dataset.name} has an endpoint but no urlEnv")
            if dataset.connector == "webhook" and not custom.get("secretEnv"):
                raise ContractError(path, "customProperties", f"{dataset.name} is webhook lines but no secretEnv")
            for key in ("versionField", "updatedField"):
                value = dataset.custom.get(key)
                if value is not None and value not in names:
                    raise ContractError(path, f"{where}.customProperties.{key}", f"{value!r} is not a property")
            if dataset.endpoint and not dataset.updated_field:
                raise ContractError(path, f"{where}.customProperties", "a REST dataset needs updatedField")
            page_size = dataset.custom.get("pageSize")
            if page_size is not None and (type(page_size) is not int or not 1 <= page_size <= MAX_PAGE_SIZE):
                raise ContractError(path, f"{where}.customProperties.pageSize",
                                    f"{page_size!r} is not a whole number of records from 1 to {MAX_PAGE_SIZE}")
            datasets[dataset.name] = dataset
    finally:
        con.close()
    slas = []
    for i, sla in enumerate(raw.get("slaProperties") or ()):
        dataset_name, _, column = sla["element"].partition(".")
        if any(s.dataset == dataset_name and s.property == sla["property"] for s in slas):
            raise ContractError(path, f"slaProperties[{i}]", f"a second {sla['property']} for {dataset_name}")
        if dataset_name not in datasets:
            raise ContractError(path, f"slaProperties[{i}].element", f"{dataset_name!r} is not a dataset")
        if column and column not in datasets[dataset_name].columns:
            raise ContractError(path, f"slaProperties[{i}].element", f"{column!r} is not a property of {dataset_name}")
        slas.append(Sla(partner, dataset_name, sla["property"], sla["value"], sla.get("unit"), column or None))
    return Contract(path, raw["id"], str(raw["version"]), partner, custom["partnerId"], datasets, tuple(slas), custom)


@functools.cache
def _load_dir(directory: Path) -> dict[str, Contract]:
    contracts: dict[str, Contract] = {}
    for path in sorted(directory.glob("*.odcs.yaml")):
        contract = load_contract(path)
        if contract.partner in contracts:
            raise ContractError(path, "dataProduct", f"{contract.partner!r} is also {contracts[contract.partner].path.name}")
        contracts[contract.partner] = contract
    return contracts


def load_contracts(directory: Path | None = None) -> dict[str, Contract]:
    """Every partner's contract by partner (``dataProduct``); read once per process and directory."""
    return _load_dir(Path(directory or CONTRACTS_DIR).resolve())


def contract(partner: str) -> Contract:
    return load_contracts()[partner]


def dataset(partner: str, name: str) -> Dataset:
    return contract(partner).datasets[name]


def all_datasets() -> list[Dataset]:
    return [d for c in load_contracts().values() for d in c.datasets.values()]


# -- Great Expectations ---------------------------------------------------------------------------------------

def rule_of(expectation_type: str, kwargs: dict) -> str:
    """The quarantine rule name of a failed expectation of ``gx_suite``."""
    if expectation_type == "expect_compound_columns_to_be_unique":
        return "unique:" + "+".join(kwargs["column_list"])
    if expectation_type == "expect_column_values_to_be_unique":
        return f"unique:{kwargs['column']}"
    kind = {"expect_column_to_exist": "column", "expect_column_values_to_not_be_null": "required",
            "expect_column_values_to_be_in_set": "enum", "expect_column_values_to_match_regex": "pattern",
            "expect_column_values_to_be_between": "range"}[expectation_type]
    return f"{kind}:{kwargs['column']}"


def gx_suite(dataset: Dataset):
    """The suite a typed batch of ``dataset`` must pass. Frame conventions (see loading.typed_frame): text and
    decimal-string columns hold the partner's text (patterns are rules on it), other numbers are floats,
    integers nullable Int64, dates and timestamps datetime64."""
    from pitwall.gx import great_expectations

    gx = great_expectations()

    E = gx.expectations
    expectations = []
    for p in dataset.properties:
        expectations.append(E.ExpectColumnToExist(column=p.name))
        if p.required:
            expectations.append(E.ExpectColumnValuesToNotBeNull(column=p.name))
        if p.valid_values is not None:
            expectations.append(E.ExpectColumnValuesToBeInSet(column=p.name, value_set=list(p.valid_values)))
        if p.pattern is not None:
            expectations.append(E.ExpectColumnValuesToMatchRegex(column=p.name, regex=p.pattern))
        if p.minimum is not None or p.maximum is not None:
            if p.wire_is_text:
                raise ContractError(CONTRACTS_DIR / f"{dataset.partner}.odcs.yaml", f"{dataset.name}.{p.name}",
                                    "minimum/maximum on a value kept as text (decimal_string) is not enforced; "
                                    "use a pattern")
            expectations.append(E.ExpectColumnValuesToBeBetween(column=p.name, min_value=p.minimum,
                                                                max_value=p.maximum))
    # The key is unique within the batch; across batches the table's primary key keeps the first record.
    if len(dataset.primary_key) > 1:
        expectations.append(E.ExpectCompoundColumnsToBeUnique(column_list=list(dataset.primary_key)))
    elif dataset.primary_key:  # GX's compound expectation wants two columns or more
        expectations.append(E.ExpectColumnValuesToBeUnique(column=dataset.primary_key[0]))
    return gx.ExpectationSuite(name=f"partner_{dataset.partner}_{dataset.name}", expectations=expectations)


# -- the contract tables ----------------------------------------------------------------------------------------

CONTRACT_TABLES_DDL = """
create table if not exists partner_contract_datasets (
    partner varchar not null,
    partner_id varchar not null,
    dataset varchar not null,
    physical_name varchar not null,
    volume_date_field varchar,
    volume_min_ratio double,
    volume_max_ratio double,
    volume_min_history_days integer,
    volume_significance double,
    amount_tolerance_abs double,
    amount_tolerance_rel double,
    primary key (partner, dataset)
);
-- added after the first release: a warehouse from before gets the column (null - no count-aware bound)
alter table partner_contract_datasets add column if not exists volume_significance double;
create table if not exists partner_contract_slas (
    partner varchar not null,
    dataset varchar not null,
    property varchar not null,      -- ODCS slaProperties.property: generalAvailability, latency, freshness, ...
    value double,                   -- numeric terms
    value_text varchar,             -- the term as written (e.g. a time of day "06:00")
    unit varchar,
    primary key (partner, dataset, property)
);
"""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def contract_rows(contracts: dict[str, Contract] | None = None) -> tuple[list[dict], list[dict]]:
    contracts = contracts or load_contracts()
    datasets, slas = [], []
    for c in contracts.values():
        for d in c.datasets.values():
            volume = d.custom.get("volumePerDay") or {}
            tolerance = (d.custom.get("reconciliation") or {}).get("amountTolerance") or {}
            datasets.append({
                "partner": c.partner, "partner_id": c.partner_id, "dataset": d.name, "physical_name": d.physical_name,
                "volume_date_field": d.volume_date_field, "volume_min_ratio": _number(volume.get("minRatio")),
                "volume_max_ratio": _number(volume.get("maxRatio")),
                "volume_min_history_days": volume.get("minHistoryDays"),
                "volume_significance": _number(volume.get("significance")),
                "amount_tolerance_abs": _number(tolerance.get("absolute")),
                "amount_tolerance_rel": _number(tolerance.get("relative")),
            })
        for s in c.slas:
            slas.append({"partner": c.partner, "dataset": s.dataset, "property": s.property,
                         "value": _number(s.value), "value_text": str(s.value), "unit": s.unit})
    return datasets, slas


_ARROW_SCHEMAS = {
    "partner_contract_datasets": pa.schema([
        ("partner", pa.string()), ("partner_id", pa.string()), ("dataset", pa.string()), ("physical_name", pa.string()),
        ("volume_date_field", pa.string()), ("volume_min_ratio", pa.float64()), ("volume_max_ratio", pa.float64()),
        ("volume_min_history_days", pa.int32()), ("volume_significance", pa.float64()),
        ("amount_tolerance_abs", pa.float64()),
        ("amount_tolerance_rel", pa.float64())]),
    "partner_contract_slas": pa.schema([
        ("partner", pa.string()), ("dataset", pa.string()), ("property", pa.string()), ("value", pa.float64()),
        ("value_text", pa.string()), ("unit", pa.string())]),
}


def write_contract_tables(con, contracts: dict[str, Contract] | None = None) -> tuple[int, int]:
    """Replace the contract tables' rows with the contracts' terms in one transaction (idempotent); returns
    (datasets, slas) written."""
    datasets, slas = contract_rows(contracts)
    con.execute(CONTRACT_TABLES_DDL)
    con.execute("begin transaction")
    try:
        for table, rows in (("partner_contract_datasets", datasets), ("partner_contract_slas", slas)):
            con.register("contract_rows", pa.Table.from_pylist(rows, schema=_ARROW_SCHEMAS[table]))
            con.execute(f"delete from {table}")
            con.execute(f"insert into {table} by name select * from contract_rows")
            con.unregister("contract_rows")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return len(datasets), len(slas)
