"""Human renderings of the CP's messages (WLs, pairs, node status, audit), shared by commands and the demo."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import duration_pb2

from xporty.cp.v1 import admin_service_pb2, policy_pb2, registry_pb2

from .output import table

_STATUS_PREFIX = "RELATIONSHIP_STATUS_"


def status_name(value: int) -> str:
    """``ACTIVE`` for RELATIONSHIP_STATUS_ACTIVE."""
    return policy_pb2.RelationshipStatus.Name(value).removeprefix(_STATUS_PREFIX)


def seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def wls_table(wls: Iterable[registry_pb2.WhiteLabel]) -> str:
    return table(
        ["wl", "name", "currency", "decimals", "reference_rate", "trader_endpoint", "dns_names"],
        [(w.wl_id, w.name, w.currency, w.currency_decimals, w.reference_rate, w.trader_endpoint,
          ",".join(w.dns_names)) for w in wls],
    )


def on_off(flag: bool) -> str:
    return "on" if flag else "off"


def pair_text(pair: policy_pb2.PairPolicy) -> str:
    """A pair and its two directions."""
    head = (f"pair {pair.wl_a} <-> {pair.wl_b}: {status_name(pair.status)}, fx {pair.fx_rate} "
            f"({pair.wl_b} per 1 {pair.wl_a}, fx_version {pair.fx_version}), limit {pair.imbalance_limit}, "
            f"imports {'FROZEN' if pair.imports_frozen else 'not frozen'}, changed at version {pair.changed_version}")
    directions = table(
        ["exporter", "importer", "import_enabled", "visible", "export_delay_s"],
        [(d.exporter_wl, d.importer_wl, on_off(d.import_enabled), on_off(d.destination_visible),
          f"{seconds(d.export_delay):g}") for d in pair.directions],
    )
    return f"{head}\n{directions}"


def pairs_table(pairs: Iterable[policy_pb2.PairPolicy]) -> str:
    return table(
        ["wl_a", "wl_b", "status", "fx", "fx_version", "limit", "frozen", "changed_version"],
        [(p.wl_a, p.wl_b, status_name(p.status), p.fx_rate, p.fx_version, p.imbalance_limit,
          "yes" if p.imports_frozen else "no", p.changed_version) for p in pairs],
    )


def node_status_table(nodes: Iterable[admin_service_pb2.NodeStatus]) -> str:
    """Per node: applied vs current version, drift, and the last rejection if any."""
    rows = []
    for n in nodes:
        state = "in sync" if n.applied_version == n.current_version else ("never reported" if not n.report_time.seconds
                                                                          else "DRIFT")
        software = f"{n.software_version or '?'}/{n.contract_version or '?'}"
        rows.append((n.wl_id, n.applied_version, n.current_version, f"{seconds(n.drift):.3f}", state, software,
                     ",".join(n.unsupported) or "-",
                     f"{n.rejected_version}: {n.last_error}" if n.rejected_version else ""))
    return table(["node", "applied", "current", "drift_s", "state", "software/contract", "unsupported", "rejected"],
                 rows)


def audit_table(records: Iterable[admin_service_pb2.AuditRecord]) -> str:
    return table(
        ["seq", "time", "actor", "action", "subject", "correlation_id"],
        [(r.sequence, r.create_time.ToDatetime().isoformat(timespec="seconds") + "Z", r.actor, r.action, r.subject,
          r.correlation_id) for r in records],
    )
