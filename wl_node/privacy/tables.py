"""Tables of the node's personal data (schema by the ``node_privacy`` Alembic branch).

* ``trader_accounts``: the trader account of this WL (the executive document's "conta trader"): id, WL, display
  name, manager contact, status. Every personal column holds an ``xwl_runtime.fieldcrypt`` ciphertext;
  ``email_index`` is the blind index that finds an account by its manager's e-mail; ``handle`` is the opaque
  contact handle peers receive instead of the contact.
* ``contact_disclosures``: the access log of clear contacts disclosed to peers (who, when, why, correlation id,
  granted or refused).
* ``subject_requests``: the audit of data-subject requests and retention runs (kind, blind index of the subject,
  who asked, how many records were affected, when).
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

trader_accounts = sa.Table(
    "trader_accounts",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("wl_id", sa.String(63), nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),  # encrypted
    sa.Column("contact_name", sa.Text, nullable=False),  # encrypted
    sa.Column("contact_email", sa.Text, nullable=False),  # encrypted
    sa.Column("contact_phone", sa.Text, nullable=False),  # encrypted
    sa.Column("email_index", sa.String(64), nullable=False, index=True),
    sa.Column("handle", sa.String(64), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),  # ACTIVE | ERASED
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

contact_disclosures = sa.Table(
    "contact_disclosures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("handle", sa.String(64), nullable=False),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("caller", sa.String(255), nullable=False),
    sa.Column("purpose", sa.String(200), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)

subject_requests = sa.Table(
    "subject_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # EXPORT | ERASE | RETENTION
    sa.Column("subject_index", sa.String(64), nullable=False),  # blind index of the subject, never the subject
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("affected", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)
