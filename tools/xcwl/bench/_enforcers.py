"""The node side of ``xcwl bench risk``'s reaction figure, run as its own process (``python -m xcwl.bench._enforcers``).

Started with one JSON argument ``{"target", "pki", "dir", "pairs": [[exporter_wl, importer_wl], …]}``. Every WL
of every pair becomes one real WL node's risk feature, built as the node builds it:

* its own durable store: a SQLite file with every node migration applied (one template file is migrated with
  Alembic, then copied per node) and claimed for the WL (``wl_node.store.claim_node``);
* its own mTLS identity (the WL certificate of the bench PKI) and its own CP channel (``wl_node.cp_channel``);
* a ``PolicyState`` holding a view where its pair is ACTIVE both ways (what the policy agent would serve), so the
  node's ``TradeGate`` judges on the real rules;
* the node's feature set from its composition root (``wl_node.app.build_features``): the risk component's enforcer is
  wired with whatever direction listeners the node registers (catalog, checkout, order desk handles); only the
  risk component's loops run (enforcer: load state, WatchSignals; local guard upkeep) — no server, policy
  agent, catalog sync or telemetry shipper (the ENFORCEMENT_ACK events stay queued in each node's outbox).

The order events are sent from here too, each by the node of the side that owns it, with its own key and CP
channel: a line ``x <EXPORT|CANCEL> <order_id> <exporter_wl> <importer_wl>`` on stdin makes the importer sign and
publish its IMPORT_FINALIZED and then the exporter its EXPORT_CONFIRMED over the pair's limit (EXPORT), or the
exporter its ORDER_CANCELLED of that order and then the importer its COMPENSATION (CANCEL); the answer is
``p <kind> <order_id> ok`` (or ``error:<type>``) on stdout.

For each signal the enforcer applies (memory, listeners, one transaction with state + cursor + ENFORCEMENT_ACK
on the node's store, AckSignal with the effective time), this process then asks the node's gate whether it still
trades the direction: after a DISABLE ``check_import`` (importer) / ``check_export`` (exporter) must refuse with
``DIRECTION_DISABLED`` and the opposite direction must stay open; after an ENABLE both must be open. It prints
one line per applied signal, ``s <wl_id> <DISABLE|ENABLE> <sequence> <ok|mismatch:<detail>>``, and ``ready``
once every enforcer's signal stream is connected (nodes are started one after the other). When stdin closes it
stops the nodes and prints one JSON line ``{"applied", "mismatches", "acks_sent", "durable_acks",
"nodes_enforcing"}`` (``acks_sent``: AckSignal calls the CP answered; ``durable_acks``: ENFORCEMENT_ACK events
found in the nodes' stores afterwards; ``nodes_enforcing``: nodes that applied at least one DISABLE and refused
the direction afterwards).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from wl_node.app import build_features
from wl_node.context import NodeContext
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.policy.state import PolicyState
from wl_node.risk.enforcer import DIRECTION_DISABLED, Enforcer
from wl_node.risk.gate import TradeGate
from wl_node.settings import NodeSettings
from wl_node.store import claim_node, migrate
from wl_node.telemetry.queue import queue as telemetry_queue
from xporty.cp.v1 import policy_pb2, signal_pb2, telemetry_pb2, telemetry_service_pb2, telemetry_service_pb2_grpc
from xwl_runtime import db
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import FailedPrecondition
from xwl_runtime.event_signing import certificate_sha256, sign
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.logs import configure_logging
from xwl_runtime.pki import PkiDir, load_key
from xwl_runtime.tls import TlsMaterial

CONNECT_TIMEOUT_S = 30.0
ACK_KIND = "ENFORCEMENT_ACK"
CROSSING_AMOUNT = "1100"
"""Amount of the crossing EXPORT_CONFIRMED (the parent seeds every pair with limit 1000)."""
_EVENTS = {"EXPORT": telemetry_pb2.LEDGER_EVENT_KIND_EXPORT_CONFIRMED,
           "FINAL": telemetry_pb2.LEDGER_EVENT_KIND_IMPORT_FINALIZED,
           "CANCEL": telemetry_pb2.LEDGER_EVENT_KIND_ORDER_CANCELLED,
           "COMP": telemetry_pb2.LEDGER_EVENT_KIND_COMPENSATION}
_SALES = ("EXPORT", "FINAL")
_KINDS = {signal_pb2.SIGNAL_KIND_DISABLE: "DISABLE", signal_pb2.SIGNAL_KIND_ENABLE: "ENABLE"}


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _policy_view(exporter: str, importer: str) -> policy_pb2.PolicyView:
    """A view where the pair trades both ways (what the node's policy agent would serve for an ACTIVE pair)."""
    a, b = sorted((exporter, importer))
    view = policy_pb2.PolicyView(version=1)
    view.pairs.append(policy_pb2.PairPolicy(
        wl_a=a, wl_b=b, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit="1000", fx_rate="1",
        fx_version=1, directions=[
            policy_pb2.DirectionPolicy(exporter_wl=x, importer_wl=y, import_enabled=True, destination_visible=True)
            for x, y in ((a, b), (b, a))]))
    return view


def _gate_reason(gate: TradeGate, wl_id: str, exporter: str, importer: str) -> str | None:
    """The node's refusal reason for ``exporter`` → ``importer`` through its checkout/order desk checks."""
    try:
        if wl_id == importer:
            gate.check_import(exporter)
        else:
            gate.check_export(importer)
    except FailedPrecondition as err:
        return err.reason
    return None


@dataclass
class _Tally:
    applied: int = 0
    mismatches: int = 0
    enforcing: set[str] = field(default_factory=set)


@dataclass
class _Node:
    wl_id: str
    enforcer: Enforcer
    gate: TradeGate
    cp: CpChannel
    lifecycle: Lifecycle
    ctx: NodeContext

    async def publish(self, kind: str, order_id: str, exporter: str, importer: str) -> None:
        """Sign one event of this node's side of an order and publish it: EXPORT_CONFIRMED (``kind`` EXPORT, over
        the limit) or ORDER_CANCELLED (CANCEL) as the exporter, IMPORT_FINALIZED (FINAL) or COMPENSATION (COMP)
        as the importer."""
        tls = self.ctx.tls
        assert tls is not None
        event = telemetry_pb2.LedgerEvent(
            event_id=uuid.uuid4().hex, wl_id=self.wl_id, correlation_id=f"cid-{order_id}", order_id=order_id,
            kind=_EVENTS[kind], exporter_wl=exporter, importer_wl=importer, quantity=1 if kind in _SALES else 0)
        if kind in _SALES:
            event.amount.currency = f"C-{exporter}"
            event.amount.amount = CROSSING_AMOUNT
        event.occur_time.FromDatetime(dt.datetime.now(dt.UTC))
        signed = sign(event, load_key(tls.pair.key_pem), tls.pair.cert_pem,
                      fingerprint=certificate_sha256(tls.pair.cert_pem))
        async with self.cp.lease() as channel:
            resp = await telemetry_service_pb2_grpc.TelemetryServiceStub(channel).PublishEvents(
                telemetry_service_pb2.PublishEventsRequest(events=[signed]), timeout=30, metadata=self.cp.metadata())
        if resp.rejected or resp.accepted != 1:
            raise RuntimeError(f"event refused: {resp.rejected[0].reason if resp.rejected else resp.accepted}")


def _observe(node: _Node, tally: _Tally) -> None:
    """Wrap the enforcer's ``apply`` (what its stream calls per signal) to check the gate once it returns."""
    apply: Callable[[signal_pb2.Signal], Awaitable[bool]] = node.enforcer.apply

    async def observed(signal: signal_pb2.Signal) -> bool:
        applied = await apply(signal)
        kind = _KINDS.get(signal.kind)
        if not applied or kind is None:
            return applied
        tally.applied += 1
        exporter, importer = signal.exporter_wl, signal.importer_wl
        forward = _gate_reason(node.gate, node.wl_id, exporter, importer)
        backward = _gate_reason(node.gate, node.wl_id, importer, exporter)
        expected = DIRECTION_DISABLED if kind == "DISABLE" else None
        problem = ""
        if forward != expected:
            problem = f"{exporter}->{importer}:{forward}"
        elif backward is not None:
            problem = f"{importer}->{exporter}:{backward}"
        if problem:
            tally.mismatches += 1
        elif kind == "DISABLE":
            tally.enforcing.add(node.wl_id)
        _emit(f"s {node.wl_id} {kind} {signal.sequence} {'mismatch:' + problem if problem else 'ok'}")
        return applied

    node.enforcer.apply = observed  # type: ignore[method-assign]


async def _build(config: dict[str, Any], wl_id: str, partner: str, template: Path, tally: _Tally) -> _Node:
    root = Path(config["dir"])
    pki = PkiDir(Path(config["pki"]))
    path = root / f"{wl_id}.db"
    await asyncio.to_thread(shutil.copyfile, template, path)
    settings = NodeSettings(wl_id=wl_id, pki_dir=pki.root, cp_target=config["target"], db_url=f"sqlite:///{path}",
                            state_dir=root / wl_id)
    engine = db.create_engine(settings.db_url)
    await claim_node(engine, wl_id)
    clock = SystemClock()
    identity = Identity.wl(wl_id)
    tls = TlsMaterial.from_pki(pki, identity)
    ctx = NodeContext(settings=settings, engine=engine, clock=clock, tls=tls)
    state = PolicyState(wl_id, clock, settings.policy_max_staleness)
    await state.apply(_policy_view(wl_id, partner))
    cp = CpChannel(cp_channel_factory(settings.cp_target, reconnect_cap_s=settings.reconnect_cap.total_seconds()),
                   tls, identity=identity)
    features = build_features(ctx, state, cp)
    risk = features.risk
    node = _Node(wl_id, risk.enforcer, risk.gate, cp, Lifecycle(None, features.components, closers=[cp.close]), ctx)
    _observe(node, tally)
    node.lifecycle.start_loops(risk.loops)
    return node


async def _connected(enforcer: Enforcer) -> None:
    while not enforcer.connected:  # noqa: ASYNC110 - the enforcer exposes a flag, not an event
        await asyncio.sleep(0.005)


async def _stop(node: _Node) -> int:
    """Stop the node's loops and close it; returns the ENFORCEMENT_ACK events durable in its store."""
    await node.lifecycle.stop(0)
    try:
        async with node.ctx.engine.connect() as conn:
            return int(await conn.scalar(
                sa.select(sa.func.count()).select_from(telemetry_queue).where(telemetry_queue.c.kind == ACK_KIND))
                or 0)
    finally:
        await node.ctx.engine.dispose()


async def _serve_commands(nodes: dict[str, _Node]) -> None:
    """Run the parent's ``x <EXPORT|CANCEL> <order_id> <exporter_wl> <importer_wl>`` lines until stdin closes."""
    running: set[asyncio.Task[None]] = set()

    async def publish(kind: str, order_id: str, exporter: str, importer: str) -> None:
        try:
            # The CP counts an order once both sides agree: the importer's side goes first, so the exporter's
            # confirmation is the event that crosses the limit (and starts the reaction time), and a cancellation
            # is joined by the importer's compensation, as real nodes do.
            if kind == "EXPORT":
                await nodes[importer].publish("FINAL", order_id, exporter, importer)
            await nodes[exporter].publish(kind, order_id, exporter, importer)
            if kind == "CANCEL":
                await nodes[importer].publish("COMP", order_id, exporter, importer)
        except (grpc.aio.AioRpcError, RuntimeError, KeyError) as err:
            _emit(f"p {kind} {order_id} error:{type(err).__name__}")
            return
        _emit(f"p {kind} {order_id} ok")

    while line := await asyncio.to_thread(sys.stdin.readline):
        parts = line.split()
        if len(parts) != 5 or parts[0] != "x":
            raise RuntimeError(f"unexpected command: {line!r}")
        task = asyncio.create_task(publish(*parts[1:]))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)


async def main(config: dict[str, Any]) -> None:
    configure_logging("ERROR")  # stdout is the data channel; stderr only for errors
    root = Path(config["dir"])
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    template = root / "template.db"
    await asyncio.to_thread(migrate, f"sqlite:///{template}")  # Alembic once; every node copies the result
    tally = _Tally()
    nodes: list[_Node] = []
    durable = 0
    try:
        for exporter, importer in config["pairs"]:
            for wl_id, partner in ((exporter, importer), (importer, exporter)):
                node = await _build(config, wl_id, partner, template, tally)
                nodes.append(node)
                await asyncio.wait_for(_connected(node.enforcer), CONNECT_TIMEOUT_S)
        _emit("ready")
        await _serve_commands({n.wl_id: n for n in nodes})  # until the parent closes stdin
    finally:
        durable = sum(await asyncio.gather(*(_stop(n) for n in nodes)))
    _emit(json.dumps({"applied": tally.applied, "mismatches": tally.mismatches, "durable_acks": durable,
                      "acks_sent": sum(n.enforcer.acks_sent for n in nodes), "nodes_enforcing": len(tally.enforcing)}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
