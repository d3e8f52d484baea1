"""The local operator: who a management command run at the hub's own machine acts as, and the
audit entry it leaves (``koppelhub token create|revoke``, ``koppelhub rebuild``,
``koppelhub dlq redrive``).

Whoever can run these commands can read the hub's data dir and database, so the command acts as
the admin (a functioneel-beheerder for all); the trail names the operating-system user who ran
it (credential ``cli:<user>``), as an API call names its token or JWT subject.
"""

from __future__ import annotations

import getpass
import os

from hub.ports.audit import AuditEntry
from hub.ports.credentials import Principal, Role


def os_user() -> str:
    """The login name of the user running this process (its uid when it has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (containers)
        return str(os.getuid())


def local_operator() -> Principal:
    return Principal("cli", Role.FUNCTIONEEL_BEHEERDER, None, credential=f"cli:{os_user()}")


def cli_entry(action: str, target: str, changes: list[str] | None = None) -> AuditEntry:
    """The entry of a command's change (``{id}`` in ``target``: the object the store makes)."""
    actor = local_operator()
    return AuditEntry(
        action=f"koppelhub {action}",
        target=target,
        outcome="ok",
        status=200,
        actor_name=actor.name,
        actor_role=actor.role.value,
        actor_credential=actor.credential,
        client="cli",
        changes=changes or [],
    )
