"""Idle cadences: the documented defaults, ``NAME=SECONDS`` overrides, and refusals naming the cadence; the
``xcwl wl serve --cadence`` flag reaches the node's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pki import PkiFixture
from wl_node.cadence import IdleCadence
from wl_node.settings import NodeSettings
from xcwl import cli
from xcwl.errors import CliError
from xcwl.serve import node_settings


def test_defaults_are_long_timers_and_a_heartbeat_below_the_stream_timeout() -> None:
    cadence = IdleCadence().validate()
    ttl = NodeSettings(wl_id="wl-a", pki_dir=Path("pki"), cp_target="cp:1", db_url="sqlite:///x.db").policy_pull_interval
    # A missed beat pulls within one TTL: the stream timeout (from the last message) is below it.
    assert cadence.offer_heartbeat_s < cadence.offer_stream_timeout_s < ttl.total_seconds()
    assert min(cadence.shipper_idle_s, cadence.reconcile_idle_s, cadence.outbox_idle_s) >= 30.0


def test_overrides_by_name_and_refusals() -> None:
    changed = IdleCadence().with_overrides(["shipper_idle=120", "offer_heartbeat=5"])
    assert (changed.shipper_idle_s, changed.offer_heartbeat_s) == (120.0, 5.0)
    assert changed.reconcile_idle_s == IdleCadence().reconcile_idle_s
    with pytest.raises(ValueError, match="NAME=SECONDS"):
        IdleCadence().with_overrides(["no_such_loop=3"])
    with pytest.raises(ValueError, match="shipper_idle must be > 0"):
        IdleCadence().with_overrides(["shipper_idle=0"])
    with pytest.raises(ValueError, match="expected seconds"):
        IdleCadence().with_overrides(["health=soon"])
    with pytest.raises(ValueError, match="offer_stream_timeout must exceed offer_heartbeat"):
        IdleCadence().with_overrides(["offer_heartbeat=30"])


def test_wl_serve_cadence_flag(pki: PkiFixture) -> None:
    base = ["wl", "serve", "--wl-id", "wl-a", "--pki", str(pki.dir.root), "--cp", "127.0.0.1:7400",
            "--db", "sqlite:///n.db", "--bootstrap-token", "t", "--cp-enroll", "127.0.0.1:7401"]
    settings = node_settings(cli.build_parser().parse_args([*base, "--cadence", "reconcile_idle=60"]))
    assert settings.cadence.reconcile_idle_s == 60.0
    assert settings.migrate_in_child  # the CLI's node keeps Alembic out of its process
    with pytest.raises(CliError, match="--cadence"):
        node_settings(cli.build_parser().parse_args([*base, "--cadence", "reconcile_idle=-1"]))
