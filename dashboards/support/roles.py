"""The support console's roles, read from the version-controlled ``roles.yaml`` (or ``PITWALL_SUPPORT_ROLES``).

The file is validated strictly when loaded: an unknown action, PII kind or role name is an error rather than a
silent grant or a silent denial, because a typo in an access file should fail loudly in review and CI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml

DEFAULT_ROLES_FILE = Path(__file__).resolve().parent / "roles.yaml"
ROLES_FILE_ENV = "PITWALL_SUPPORT_ROLES"

# Every action the console can authorize. The page, the service and the tests iterate over this tuple, so a new
# action cannot exist without appearing in the role matrix.
ACTIONS = ("lookup", "remote_logout", "impersonate", "view_audit")
PII_KINDS = ("name", "email", "phone", "location", "vehicle")
DEFAULT_IMPERSONATION_TTL = timedelta(minutes=30)


class RolesFileError(ValueError):
    """The roles file is malformed; the console refuses everyone rather than guess."""


@dataclass(frozen=True)
class Role:
    name: str
    actions: frozenset[str]
    pii: frozenset[str]
    description: str = ""

    def allows(self, action: str) -> bool:
        return action in self.actions

    def sees(self, pii_kind: str) -> bool:
        return pii_kind in self.pii


@dataclass(frozen=True)
class RoleBook:
    roles: dict[str, Role]
    users: dict[str, str]  # normalized email -> role name
    impersonation_ttl: timedelta = DEFAULT_IMPERSONATION_TTL

    def role_of(self, email: str) -> Role | None:
        name = self.users.get(normalize_email(email))
        return self.roles[name] if name else None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def roles_file() -> Path:
    return Path(os.environ.get(ROLES_FILE_ENV) or DEFAULT_ROLES_FILE)


def parse(document: dict) -> RoleBook:
    if not isinstance(document, dict):
        raise RolesFileError("the roles file must be a mapping with `roles` and `users`")
    unknown_keys = set(document) - {"roles", "users", "impersonation_ttl_minutes"}
    if unknown_keys:
        raise RolesFileError(f"unknown top-level keys: {sorted(unknown_keys)}")

    roles: dict[str, Role] = {}
    for name, spec in (document.get("roles") or {}).items():
        spec = spec or {}
        actions = set(spec.get("actions") or [])
        pii = set(spec.get("pii") or [])
        if actions - set(ACTIONS):
            raise RolesFileError(f"role {name!r}: unknown actions {sorted(actions - set(ACTIONS))}; known: {ACTIONS}")
        if pii - set(PII_KINDS):
            raise RolesFileError(f"role {name!r}: unknown PII kinds {sorted(pii - set(PII_KINDS))}; known: {PII_KINDS}")
        roles[name] = Role(name, frozenset(actions), frozenset(pii), str(spec.get("description", "")))

    users: dict[str, str] = {}
    for email, role in (document.get("users") or {}).items():
        if role not in roles:
            raise RolesFileError(f"user {email!r}: role {role!r} is not defined under `roles`")
        key = normalize_email(str(email))
        if key in users:
            raise RolesFileError(f"user {email!r} is listed twice")
        users[key] = role

    minutes = document.get("impersonation_ttl_minutes", DEFAULT_IMPERSONATION_TTL.total_seconds() / 60)
    if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or not 0 < minutes <= 24 * 60:
        raise RolesFileError(f"impersonation_ttl_minutes must be a number of minutes in (0, 1440], got {minutes!r}")
    return RoleBook(roles, users, timedelta(minutes=minutes))


def load(path: Path | None = None) -> RoleBook:
    path = path or roles_file()
    return parse(yaml.safe_load(Path(path).read_text()))
