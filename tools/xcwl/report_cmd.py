"""``xcwl report balance``: every pair's trade balance, the open alerts and the recent signals (AnalyticsService).

``report discrepancies`` lists orders whose two sides disagree (one side missing past the grace period, amounts
or quantities, a one-sided cancellation) and security findings (an event id re-sent with another payload), with
what each side reported and the value in dispute. Operators only.
"""

from __future__ import annotations

import argparse

from xporty.cp.v1 import analytics_service_pb2

from .errors import CliError
from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, table, to_dict
from .render_trade import alerts_table, balances_table, signals_table, when


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="risk reports from the CP (AnalyticsService)")
    r_sub = report.add_subparsers(dest="report_cmd", required=True)

    balance = r_sub.add_parser("balance", help="per pair: exports each way, net, limit, utilisation, trend, level; "
                                               "open alerts; recent signals")
    add_ops_flags(balance)
    balance.add_argument("--signals", type=int, default=10, metavar="N", help="how many recent signals to show")
    balance.set_defaults(func=ops_command(_balance))

    disc = r_sub.add_parser("discrepancies", help="orders whose two sides disagree, and security findings")
    add_ops_flags(disc)
    disc.set_defaults(func=ops_command(_discrepancies))

    slo = r_sub.add_parser("slo", help="the shared SLOs, globally and per pair, each against its target (OK/BREACH)")
    add_ops_flags(slo)
    slo.add_argument("--window", default="1h", metavar="DURATION",
                     help="window ending now: seconds, or a number with s/m/h/d (default 1h)")
    slo.set_defaults(func=ops_command(_slo))


async def _balance(args: argparse.Namespace, client: OpsClient) -> int:
    balances = await client.balances()
    alerts = await client.alerts(open_only=True)
    signals = await client.signals(page_size=max(1, args.signals))
    human = "\n\n".join((
        f"balances (reference unit)\n{balances_table(balances)}",
        f"open alerts: {len(alerts)}\n{alerts_table(alerts)}" if alerts else "open alerts: none",
        f"recent signals (newest first)\n{signals_table(signals)}" if signals else "signals: none",
    ))
    emit(args.json, {"balances": [to_dict(b) for b in balances], "open_alerts": [to_dict(a) for a in alerts],
                     "signals": [to_dict(s) for s in signals]}, human)
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window_seconds(value: str) -> int:
    """``--window``: ``3600``, ``90s``, ``15m``, ``1h``, ``7d`` (1 s to 30 days)."""
    text = value.strip().lower()
    unit = _UNITS.get(text[-1:], 0)
    number = text[:-1] if unit else text
    try:
        seconds = int(float(number) * (unit or 1))
    except ValueError:
        raise CliError(f"--window: expected e.g. 3600, 15m, 1h or 7d, got {value[:32]!r}") from None
    if not 1 <= seconds <= 30 * 86400:
        raise CliError(f"--window: expected 1 s to 30 days, got {value[:32]!r}")
    return seconds


def slo_text(report: analytics_service_pb2.GetSloReportResponse) -> str:
    """The SLO report as ``xcwl report slo`` prints it: every figure against its target, then the sync lags."""
    rows = [(f.name, f.scope, f"{f.value} {f.unit}".strip() if f.value else "no data", f"{f.target} {f.unit}",
             f.samples, "BREACH" if f.breach else "OK") for f in report.figures]
    lags = [(f"{x.importer_wl}/{x.exporter_wl}", "current" if not x.level_seconds else f">= {x.level_seconds:g} s",
             f"{x.seconds:.1f} s", when(x.measure_time)) for x in report.sync_lags]
    text = (f"SLO report, last {report.window_seconds} s\n"
            + table(["figure", "scope", "value", "target", "samples", "status"], rows))
    if lags:
        text += "\n\ncatalog sync lag (importer/exporter, as reported)\n" + table(
            ["pair", "level", "lag", "measured"], lags)
    return text


async def _slo(args: argparse.Namespace, client: OpsClient) -> int:
    report = await client.slo_report(window_seconds(args.window))
    emit(args.json, {"window_seconds": report.window_seconds,
                     "figures": [{**to_dict(f), "status": "BREACH" if f.breach else "OK"} for f in report.figures],
                     "sync_lags": [to_dict(x) for x in report.sync_lags]}, slo_text(report))
    return 0


def _side(amount: str, quantity: int) -> str:
    """One side's report of an order (``3 × 120.00``), or ``-`` when that side said nothing."""
    return f"{quantity} × {amount}" if amount else "-"


async def _discrepancies(args: argparse.Namespace, client: OpsClient) -> int:
    items = await client.discrepancies()
    emit(args.json, {"discrepancies": [to_dict(d) for d in items]}, table(
        ["order", "exporter", "importer", "category", "reason", "exporter says", "importer says", "disputed",
         "detected", "correlation_id"],
        [(d.order_id, d.exporter_wl, d.importer_wl, d.category, d.reason, _side(d.export_amount, d.export_quantity),
          _side(d.import_amount, d.import_quantity), d.disputed_value, when(d.detect_time), d.correlation_id)
         for d in items],
    ))
    return 0
