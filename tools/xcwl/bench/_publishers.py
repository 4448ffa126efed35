"""The publishing side of ``xcwl bench risk``'s ingest figure, run as its own process
(``python -m xcwl.bench._publishers``), so the CP being measured does not share its process (GIL, event loop)
with its clients.

Started with one JSON argument ``{"target", "pki", "nodes": [[wl_id, partner_wl], …], "events", "batch"}``. It
signs every node's events first (EXPORT_CONFIRMED of ``events`` distinct orders per node: signing is the nodes'
cost, not the CP's), opens one mTLS channel per node, prints ``ready`` and waits for a line on stdin. Then all
nodes publish their batches concurrently, each node one PublishEvents call at a time (as a node's outbox does),
and it prints one JSON line ``{"events", "elapsed_s", "max_batch_ms", "cpu_s", "setup_cpu_s"}``: ``elapsed_s`` is
the wall time from the first request sent to the last response received (every response must accept its whole
batch); ``cpu_s`` the CPU time this process used meanwhile, ``setup_cpu_s`` what signing took before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from xporty.cp.v1 import telemetry_pb2, telemetry_service_pb2, telemetry_service_pb2_grpc
from xwl_runtime.event_signing import certificate_sha256, sign
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, load_key
from xwl_runtime.tls import TlsMaterial, secure_channel

EXPORT = telemetry_pb2.LEDGER_EVENT_KIND_EXPORT_CONFIRMED
FINAL = telemetry_pb2.LEDGER_EVENT_KIND_IMPORT_FINALIZED


def _events(pki: PkiDir, wl_id: str, partner: str, count: int) -> list[telemetry_pb2.SignedEvent]:
    material = TlsMaterial.from_pki(pki, Identity.wl(wl_id))
    key = load_key(material.pair.key_pem)
    fp = certificate_sha256(material.pair.cert_pem)
    now = dt.datetime.now(dt.UTC)
    out = []
    for n in range(count):
        # Every other event finalizes the partner's previous export, so half of the orders are agreed by both
        # sides during the run and move the balance (the other half waits for the partner's finalization).
        exporter, importer, kind = (wl_id, partner, EXPORT) if n % 2 == 0 else (partner, wl_id, FINAL)
        e = telemetry_pb2.LedgerEvent(event_id=uuid.uuid4().hex, wl_id=wl_id, correlation_id=uuid.uuid4().hex,
                                      kind=kind, order_id=f"{exporter}-{n - n % 2}", exporter_wl=exporter,
                                      importer_wl=importer, quantity=1)
        e.amount.currency = f"C-{exporter}"
        e.amount.amount = "1.25"
        e.occur_time.FromDatetime(now)
        out.append(sign(e, key, material.pair.cert_pem, fingerprint=fp))
    return out


async def _run(config: dict[str, Any]) -> dict[str, float]:
    setup_cpu = time.process_time()
    pki = PkiDir(Path(config["pki"]))
    batch = int(config["batch"])
    work = []
    for wl_id, partner in config["nodes"]:
        events = _events(pki, wl_id, partner, int(config["events"]))
        channel = secure_channel(config["target"], TlsMaterial.from_pki(pki, Identity.wl(wl_id)),
                                 expected=Identity.cp())
        stub = telemetry_service_pb2_grpc.TelemetryServiceStub(channel)
        requests = [telemetry_service_pb2.PublishEventsRequest(events=events[i:i + batch])
                    for i in range(0, len(events), batch)]
        work.append((channel, stub, requests))
    # Connections (TLS handshakes) up before the clock starts.
    await asyncio.gather(*(stub.PublishEvents(telemetry_service_pb2.PublishEventsRequest(), timeout=30)
                           for _, stub, _ in work))
    setup_cpu = time.process_time() - setup_cpu
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    slowest = 0.0

    async def drive(stub: telemetry_service_pb2_grpc.TelemetryServiceStub,
                    requests: list[telemetry_service_pb2.PublishEventsRequest]) -> int:
        nonlocal slowest
        done = 0
        for req in requests:
            t0 = time.perf_counter()
            resp = await stub.PublishEvents(req, timeout=120)
            slowest = max(slowest, time.perf_counter() - t0)
            if resp.rejected or resp.accepted != len(req.events):
                reason = resp.rejected[0].reason if resp.rejected else f"accepted {resp.accepted}"
                raise RuntimeError(f"bench events not all accepted: {reason}")
            done += resp.accepted
        return done

    started, cpu = time.perf_counter(), time.process_time()
    counts = await asyncio.gather(*(drive(stub, reqs) for _, stub, reqs in work))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for channel, _, _ in work:
        await channel.close()
    return {"events": sum(counts), "elapsed_s": elapsed, "max_batch_ms": slowest * 1000, "cpu_s": cpu,
            "setup_cpu_s": setup_cpu}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_run(json.loads(sys.argv[1])))), flush=True)
