"""Who did an audited action: the `actor` every service that changes money, credentials or people takes.

The caller knows who is acting (the portal's signed-in user, the request's API key, the operator in the
console, the OS user behind `manage.py`, a task); the service records the row. `label` is what the log's
`actor` column has always held ("staff:a@example.com", "api-key:<key_id>", "operator:<email>"), so old and
new rows filter alike.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["staff", "api-key", "operator", "cli", "system", "anonymous"]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str = ""  # the email, key id or OS user; empty for "system" and "anonymous"
    ip: str = ""  # where the request came from; empty off the web (CLI, tasks)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind

    @property
    def name(self) -> str:
        """How the actor reads in prose (a ledger description): the email or key id, else the label."""
        return self.id or self.label

    @classmethod
    def staff(cls, email: str, *, ip: str = "") -> Actor:
        return cls(kind="staff", id=email, ip=ip)

    @classmethod
    def api_key(cls, key_id: str, *, ip: str = "") -> Actor:
        return cls(kind="api-key", id=key_id, ip=ip)

    @classmethod
    def operator(cls, email: str, *, ip: str = "") -> Actor:
        return cls(kind="operator", id=email, ip=ip)

    @classmethod
    def cli(cls) -> Actor:
        """Whoever runs `manage.py` on the server: the OS account is all we know about them."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name and no passwd entry (some containers)
            user = "unknown"
        return cls(kind="cli", id=user)
