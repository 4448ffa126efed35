"""The data of the Overview, Risk heatmap, Executive alerts and Operations pages (the pair pages: ``pair_pages``).

Every number is read from one query on the CP's store (rollups, balances, signals, discrepancies, node status,
audit), limited to what the principal may see, and returned as a ``Page`` — the JSON API, the HTML and the CSV
downloads all render that same object.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.risk import tables as rt
from cp_server.risk.ledger import Balance
from cp_server.risk.thresholds import utilisation
from cp_server.rollups import kpis
from cp_server.rollups.buckets import month_label, month_of
from cp_server.slo import tables as ot
from cp_server.slo.report import Figure
from cp_server.store import schema

from .access import Principal
from .model import Page, Table, Value, text

ALERT_KINDS = ("ALERT", "ALERT_CLEARED", "DISABLE", "ENABLE", "PAIR_STATUS")
MAX_ALERT_ROWS = 200


def _pairs_of(table: sa.Table, p: Principal, a: str = "wl_a", b: str = "wl_b") -> sa.ColumnElement[bool]:
    if p.wl is None:
        return sa.true()
    return sa.or_(table.c[a] == p.wl, table.c[b] == p.wl)


def util_text(u: Decimal) -> str:
    """Utilisation as a plain decimal with 4 places (``Infinity`` above a zero limit)."""
    return "Infinity" if u.is_infinite() else format(u.quantize(Decimal("0.0001")), "f")


async def overview(conn: AsyncConnection, p: Principal, now: dt.datetime, slo: list[Figure] | None) -> Page:
    """GMV this month and per month, per WL in its own currency, conversion, active pairs, open alerts, SLOs."""
    months = await kpis.months(conn, scope=p.wl)
    this = next((m for m in months if m.month == month_of(now)), None)
    page = Page("overview")
    currencies = dict((await conn.execute(sa.select(schema.white_labels.c.wl_id,
                                                    schema.white_labels.c.currency))).all())
    pr = schema.pairs
    active = (await conn.execute(sa.select(sa.func.count()).select_from(pr)
                                 .where(pr.c.status == "ACTIVE", _pairs_of(pr, p)))).scalar_one()
    al = rt.alerts
    open_alerts = (await conn.execute(sa.select(sa.func.count()).select_from(al)
                                      .where(al.c.open == sa.true(), _pairs_of(al, p)))).scalar_one()
    page.figures = {
        "month": month_label(month_of(now)),
        "gmv_this_month": text(this.gmv if this else Decimal(0)),
        "views_this_month": this.views if this else 0,
        "checkouts_this_month": this.checkouts if this else 0,
        "completed_this_month": this.completed if this else 0,
        "conversion_this_month": text(this.conversion) if this else None,
        "checkout_rate_this_month": text(this.checkout_rate) if this else None,
        "active_pairs": int(active),
        "open_alerts": int(open_alerts),
        "slo_breaches": None if slo is None else sum(1 for f in slo if f.breach),
    }
    page.tables["gmv_by_month"] = Table(
        ["month", "gmv_reference", "completed_orders", "views", "checkouts", "conversion"],
        [[month_label(m.month), text(m.gmv), m.completed, m.views, m.checkouts, text(m.conversion)]
         for m in reversed(months)])
    page.tables["gmv_by_wl"] = Table(
        ["wl", "currency", "exports_this_month"],
        [[wl, currencies.get(wl, ""), text(amount)] for wl, amount in (this.gmv_by_wl if this else {}).items()])
    if slo is not None:
        page.tables["slo"] = Table(["name", "scope", "value", "target", "unit", "status", "samples"], [
            [f.name, f.scope, text(f.value), text(f.target), f.unit,
             "no data" if f.value is None else ("BREACH" if f.breach else "OK"), f.samples] for f in slo])
    return page


async def heatmap(conn: AsyncConnection, p: Principal) -> Page:
    """Every visible pair's utilisation, status and disabled directions, and the WLs of the matrix."""
    pr, b, d = schema.pairs, rt.balances, rt.direction_state
    rows = (await conn.execute(
        sa.select(pr.c.wl_a, pr.c.wl_b, pr.c.status, pr.c.imbalance_limit, b.c.exports_ab, b.c.exports_ba, b.c.level)
        .select_from(pr.outerjoin(b, sa.and_(b.c.wl_a == pr.c.wl_a, b.c.wl_b == pr.c.wl_b)))
        .where(_pairs_of(pr, p)).order_by(pr.c.wl_a, pr.c.wl_b))).all()
    disabled = {(r.exporter_wl, r.importer_wl) for r in (await conn.execute(
        sa.select(d.c.exporter_wl, d.c.importer_wl).where(d.c.disabled == sa.true(),
                                                          _pairs_of(d, p, "exporter_wl", "importer_wl")))).all()}
    table = Table(["wl_a", "wl_b", "utilisation", "net_delta", "limit", "level", "status", "disabled"])
    wls: set[str] = set()
    for r in rows:
        net = Balance(Decimal(r.exports_ab or "0"), Decimal(r.exports_ba or "0")).net
        limit = Decimal(r.imbalance_limit)
        off = [f"{x}->{y}" for x, y in ((r.wl_a, r.wl_b), (r.wl_b, r.wl_a)) if (x, y) in disabled]
        table.rows.append([r.wl_a, r.wl_b, util_text(utilisation(net, limit)), text(net), text(limit),
                           r.level or "OK", r.status, " ".join(off)])
        wls.update((r.wl_a, r.wl_b))
    page = Page("heatmap", figures={"wls": sorted(wls), "pairs": len(table.rows)})
    page.tables["pairs"] = table
    return page


async def alerts(conn: AsyncConnection, p: Principal, slo: list[Figure] | None) -> Page:
    """ALERT / DISABLE / ENABLE / status signals, open discrepancies and SLO breaches, newest first."""
    s, d = rt.signals, rt.discrepancies
    rows: list[tuple[dt.datetime, list[Value]]] = []
    for r in (await conn.execute(
            sa.select(s.c.issue_time, s.c.kind, s.c.source, s.c.exporter_wl, s.c.importer_wl, s.c.wl_a, s.c.wl_b,
                      s.c.reason, s.c.correlation_id, s.c.pair_status)
            .where(s.c.kind.in_(ALERT_KINDS), _pairs_of(s, p)).order_by(s.c.sequence.desc())
            .limit(MAX_ALERT_ROWS))).all():
        direction = (f"{r.wl_a}/{r.wl_b}" if r.kind in ("ALERT", "ALERT_CLEARED")
                     else f"{r.exporter_wl}->{r.importer_wl}")
        detail = r.reason if r.kind != "PAIR_STATUS" else f"{r.pair_status}: {r.reason}"
        rows.append((r.issue_time, [text(r.issue_time), r.kind, r.source, direction, detail, r.correlation_id]))
    for q in (await conn.execute(
            sa.select(d.c.detect_time, d.c.reason, d.c.category, d.c.exporter_wl, d.c.importer_wl, d.c.order_id,
                      d.c.disputed_value, d.c.correlation_id)
            .where(d.c.resolved_at.is_(None), _pairs_of(d, p, "exporter_wl", "importer_wl"))
            .order_by(d.c.detect_time.desc()).limit(MAX_ALERT_ROWS))).all():
        disputed = f", disputed {q.disputed_value}" if q.disputed_value else ""
        rows.append((q.detect_time, [text(q.detect_time), "DISCREPANCY", q.category,
                                     f"{q.exporter_wl}->{q.importer_wl}",
                                     f"{q.reason} on order {q.order_id}{disputed}", q.correlation_id]))
    rows.sort(key=lambda x: x[0], reverse=True)
    breaches: list[list[Value]] = [
        [None, "SLO_BREACH", "SLO", f.scope, f"{f.name} {text(f.value)} {f.unit} (target {text(f.target)})", ""]
        for f in (slo or []) if f.breach]
    table = Table(["time", "kind", "source", "pair", "detail", "correlation_id"],
                  [*breaches, *(r for _, r in rows[:MAX_ALERT_ROWS])])
    return Page("alerts", figures={"rows": len(table.rows)}, tables={"alerts": table})


async def operations(conn: AsyncConnection, p: Principal, now: dt.datetime,
                     audit: tuple[bool, int, int] | None) -> Page:
    """Node health and policy drift per node, breaker states, and (XporY operators) the audit log's status."""
    ns, pv, wl = schema.node_status, schema.policy_versions, schema.white_labels
    current = (await conn.execute(sa.select(schema.cp_state.c.policy_version))).scalar_one_or_none() or 0
    reports = {r.wl_id: r for r in (await conn.execute(sa.select(ns))).all()}
    nodes = Table(["wl", "applied_version", "current_version", "drift_s", "last_report", "last_error"])
    for wl_id in (await conn.execute(sa.select(wl.c.wl_id).order_by(wl.c.wl_id))).scalars():
        if p.wl is not None and wl_id != p.wl:
            continue
        r = reports.get(wl_id)
        if r is None:
            nodes.rows.append([wl_id, None, current, None, None, "never reported"])
            continue
        lacking = (await conn.execute(sa.select(sa.func.min(pv.c.committed_at))
                                      .where(pv.c.version > r.applied_version))).scalar_one_or_none()
        drift = 0 if r.applied_version >= current or lacking is None else int((now - lacking).total_seconds())
        nodes.rows.append([wl_id, int(r.applied_version), int(current), drift, text(r.report_time),
                           r.last_error[:200]])
    bt = ot.breaker_transitions
    latest = sa.select(bt.c.importer_wl, bt.c.exporter_wl, sa.func.max(bt.c.id).label("id")).group_by(
        bt.c.importer_wl, bt.c.exporter_wl).subquery()
    breakers = Table(["importer", "exporter", "state", "since", "reason"], [
        [r.importer_wl, r.exporter_wl, r.to_state, text(r.at), r.reason] for r in (await conn.execute(
            sa.select(bt).join(latest, latest.c.id == bt.c.id).where(_pairs_of(bt, p, "importer_wl", "exporter_wl"))
            .order_by(bt.c.importer_wl, bt.c.exporter_wl))).all()])
    page = Page("operations", tables={"nodes": nodes, "breakers": breakers})
    page.figures = {"policy_version": int(current),
                    "nodes_drifted": sum(1 for r in nodes.rows if r[3] is None or (isinstance(r[3], int) and r[3]))}
    if p.wl is None and audit is not None:
        ok, checked, first_bad = audit
        page.figures.update(audit_ok=ok, audit_records=checked, audit_first_bad=first_bad or None)
        a = schema.audit_log
        page.tables["audit"] = Table(["seq", "time", "actor", "action", "subject", "correlation_id"], [
            [int(r.seq), text(r.create_time), r.actor, r.action, r.subject, r.correlation_id]
            for r in (await conn.execute(
                sa.select(a.c.seq, a.c.create_time, a.c.actor, a.c.action, a.c.subject, a.c.correlation_id)
                .order_by(a.c.seq.desc()).limit(50))).all()])
    return page
