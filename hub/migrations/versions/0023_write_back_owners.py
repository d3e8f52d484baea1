"""A connector's write-back subscription belongs to the connector's organisation.

They were created hub-wide (``organisatie`` NULL): the connector's own beheerder got a 404 for
the deliveries the connector's answer points to, and their ``delivery.dead`` alerts reached none
of its organisation's subscriptions. The hub now sets the organisation when it creates or changes
one (``hub.services.writeback_subscriptions.sync_write_back``); this gives the existing ones
theirs, except where the connector's ``writeBack.organisaties`` names others too (then it stays
hub-wide, as an organisation's subscription receives only that organisation's events). Data
only; the downgrade leaves the owners set (the schema is the same).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# ``writeBack`` is ``true`` or an object; its ``organisaties`` unset, empty or just the
# connector's own organisation means "the connector's own" (write_back_organisaties).
_OWN_ONLY = """
    UPDATE subscriptions s SET organisatie = c.organisatie
    FROM connectors c
    WHERE s.protocol = 'koppelhub-connector'
      AND s.organisatie IS NULL
      AND s.config ->> 'connector' = c.id::text
      AND (
        jsonb_typeof(c.config -> 'writeBack') IS DISTINCT FROM 'object'
        OR coalesce(c.config -> 'writeBack' -> 'organisaties', 'null'::jsonb) IN ('null'::jsonb, '[]'::jsonb)
        OR c.config -> 'writeBack' -> 'organisaties' = jsonb_build_array(c.organisatie)
      )
"""


def upgrade() -> None:
    op.execute(_OWN_ONLY)


def downgrade() -> None:
    pass
