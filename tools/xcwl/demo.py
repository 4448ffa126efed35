"""``xcwl demo``: a CP and three WL nodes on loopback, each its own process, shown doing their main job.

Steps (each a function of ``Demo``; features add steps to ``STEPS``):

1. a fresh PKI in a temp dir (CA, CP certificate, an operator certificate);
2. the CP (``xcwl cp serve``, SQLite) on free loopback ports, waited for until health says SERVING;
3. the WLs registered (wl-a/XPY-A, wl-b/XPY-B, wl-c/XPY-C), one bootstrap token each;
4. three nodes (``xcwl wl serve``) that enroll online with their token, waited for until SERVING;
5. pair policies set (every pair ACTIVE with an FX, a limit, both directions open); every node applies them;
6. each WL's own service (an app certificate) publishes offers through its node's local API; every node's
   imported catalog is printed: source price, converted price, FX and its version, masked manager contact
   (``demo_trade``);
7. one change (FX of wl-a/wl-b and wl-b/wl-c PAUSED), shown applied by every node (ListNodeStatus polled until
   applied == current) with the time it took;
8. the catalogs follow it: wl-a's offers re-priced at wl-b, wl-b/wl-c offers hidden on both sides;
9. a burst of concurrent cross-WL Checkouts on one offer from two importers; stock, orders and ledgers on both
   sides, read from the nodes' stores, add up (``demo_trade``);
10. rollout: wl-a → wl-b in pilot (one named member, caps), the refusals with stage and headroom, then promoted
    to expansion and general (``demo_rollout``, ``docs/rollout.md``);
11. risk: a small imbalance limit on wl-a/wl-c, purchases across 80% and 100%, the alert, the DISABLE signal, the
    next checkout refused, and recovery by reverse trade (``demo_risk``; skipped with a line saying why when the
    node has no event shipper);
12. the live SLO report (``xcwl report slo``): every shared figure against its target, OK or BREACH, globally and
    per pair, and the catalog sync lag the importers reported (``demo_slo``);
13. everything stopped with SIGTERM and waited for; the exit code is 0 only if every process exited cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from xporty.cp.v1 import admin_service_pb2, policy_pb2, registry_pb2
from xwl_runtime.identity import Identity

from . import demo_risk, demo_rollout, demo_slo, demo_trade
from .demo_world import OPERATOR, PAIRS, WLS, Demo, free_port
from .errors import CliError
from .render import node_status_table, pairs_table

ORDER_TIMEOUT_MS = 2000
"""The nodes' order deadline in the demo: four processes share this machine while a burst of checkouts runs, so the
default (300 ms, sized for a node with its own cores) would turn queueing into in-doubt checkouts."""

# --- steps ---------------------------------------------------------------------------------------------------


async def make_pki(demo: Demo) -> None:
    demo.pki.init_ca()
    demo.pki.issue(Identity.ops(OPERATOR))
    demo.out(f"CA, CP and operator certificates in {demo.pki.root}")


async def start_cp(demo: Demo) -> None:
    demo.cp_port, demo.enroll_port = free_port(), free_port()
    proc = demo.spawn("cp", [
        "cp", "serve", "--pki", str(demo.pki.root), "--db", f"sqlite:///{demo.root / 'cp.db'}",
        "--listen", demo.cp_target, "--enroll-listen", f"127.0.0.1:{demo.enroll_port}",
    ])
    await demo.wait_serving(proc, demo.cp_target)
    demo.out(f"CP pid {proc.popen.pid} SERVING: mTLS {demo.cp_target}, enrollment 127.0.0.1:{demo.enroll_port}")


async def register_wls(demo: Demo) -> None:
    async with demo.client() as client:
        for wl in WLS:
            demo.node_ports[wl.wl_id] = free_port()
            await client.register_wl(registry_pb2.WhiteLabel(
                wl_id=wl.wl_id, name=wl.name, currency=wl.currency, currency_decimals=2,
                reference_rate=wl.reference_rate, trader_endpoint=f"127.0.0.1:{demo.node_ports[wl.wl_id]}",
            ))
            demo.tokens[wl.wl_id] = (await client.create_bootstrap_token(wl.wl_id)).token
            demo.out(f"registered {wl.wl_id} ({wl.name}, {wl.currency}) and created its one-time bootstrap token")


async def start_nodes(demo: Demo) -> None:
    waits = []
    for wl in WLS:
        node_pki = demo.root / wl.wl_id / "pki"
        node_pki.mkdir(parents=True)
        shutil.copy(demo.pki.ca_cert, node_pki / "ca.crt")  # a node starts with the CA certificate only
        target = f"127.0.0.1:{demo.node_ports[wl.wl_id]}"
        proc = demo.spawn(wl.wl_id, [
            "wl", "serve", "--wl-id", wl.wl_id, "--pki", str(node_pki), "--cp", demo.cp_target,
            "--cp-enroll", f"127.0.0.1:{demo.enroll_port}", f"--bootstrap-token={demo.tokens[wl.wl_id]}",
            "--db", f"sqlite:///{demo.root / wl.wl_id / 'node.db'}", "--listen", target,
            "--state-dir", str(demo.root / wl.wl_id / "state"), "--order-timeout-ms", str(ORDER_TIMEOUT_MS),
        ])
        waits.append(demo.wait_serving(proc, target, Identity.wl(wl.wl_id)))
    await asyncio.gather(*waits)
    for wl in WLS:
        demo.out(f"{wl.wl_id} enrolled online (spiffe://xporty/wl/{wl.wl_id}) and SERVING on "
                 f"127.0.0.1:{demo.node_ports[wl.wl_id]}")


async def set_policies(demo: Demo) -> None:
    version = 0
    async with demo.client() as client:
        for a, b, fx in PAIRS:
            resp = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
                wl_a=a, wl_b=b, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, fx_rate=fx, imbalance_limit="10000",
                force_fx=True, reason="demo: open the pair",
            ))
            for exporter, importer in ((a, b), (b, a)):
                done = await client.update_direction(admin_service_pb2.UpdateDirectionPolicyRequest(
                    exporter_wl=exporter, importer_wl=importer, import_enabled=True, destination_visible=True,
                    reason="demo: open the direction",
                ))
                version = max(version, resp.version, done.version)
        pairs = (await client.list_pairs()).policies
    demo.out(pairs_table(pairs))
    nodes, took = await demo.wait_applied(version)
    demo.out(f"every node applied policy version {version} ({took * 1000:.0f} ms after the last change):")
    demo.out(node_status_table(nodes))


async def change_policies(demo: Demo) -> None:
    async with demo.client() as client:
        fx = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
            wl_a="wl-a", wl_b="wl-b", fx_rate="1.3", reason="demo: FX moves"))
        paused = await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
            wl_a="wl-b", wl_b="wl-c", status=policy_pb2.RELATIONSHIP_STATUS_PAUSED, reason="demo: pause b-c"))
    demo.out(f"changed: wl-a/wl-b FX {fx.policy.fx_rate} (fx_version {fx.policy.fx_version}, policy version "
             f"{fx.version}); wl-b/wl-c PAUSED (policy version {paused.version})")
    nodes, took = await demo.wait_applied(paused.version)
    demo.out(f"every node applied policy version {paused.version} within {took * 1000:.0f} ms:")
    demo.out(node_status_table(nodes))


Step = Callable[[Demo], Awaitable[None]]
STEPS: list[tuple[str, Step]] = [
    ("fresh PKI", make_pki),
    ("control plane", start_cp),
    ("WL registry and bootstrap tokens", register_wls),
    ("WL nodes (online enrollment)", start_nodes),
    ("pair policies", set_policies),
    ("offers published through the local API; imported catalogs", demo_trade.publish_offers),
    ("a policy change reaches every node", change_policies),
    ("the catalogs follow the change (re-pricing, hiding)", demo_trade.catalogs_after_change),
    ("a burst of cross-WL checkouts", demo_trade.checkout_burst),
    ("rollout: wl-a → wl-b pilot → expansion → general", demo_rollout.rollout_scenario),
    ("risk: imbalance limit, alert, disable signal, recovery", demo_risk.risk_scenario),
    ("the live SLO report: every shared target, OK or BREACH", demo_slo.slo_report),
]


async def stop_all(demo: Demo) -> list[str]:
    """SIGTERM the nodes together (each drains for its grace period), then the CP, so no node sees its CP vanish
    first; problems found, if any."""
    nodes, rest = demo.procs[1:], demo.procs[:1]  # the CP is started first
    found = await asyncio.gather(*(p.stop() for p in nodes))
    found += [await p.stop() for p in rest]
    return [p for p in found if p]


async def keep_dashboard(demo: Demo) -> None:
    """Stop the nodes, print a login link, and keep the CP serving its dashboard until Ctrl-C."""
    nodes = demo.procs[1:]
    await asyncio.gather(*(p.stop() for p in nodes))
    demo.procs[1:] = []
    async with demo.client() as client:
        link = await client.login_link()
    demo.out(f"\nthe CP keeps running with the demo's trade; open this link once (valid 5 minutes; a new one: "
             f"xcwl dashboard login --cp {demo.cp_target} --pki {demo.pki.root} --as {OPERATOR}):\n{link.url}\n"
             "the certificate is the demo CA's: accept it in the browser. Ctrl-C stops the CP.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_demo(root: Path, out: Callable[[str], None] = print, *, dashboard: bool = False) -> int:
    demo = Demo(root=root, out=out)
    if dashboard:  # the CP also serves the dashboard, and outlives the steps
        demo.serve_flags["cp"] = ["--http-listen", f"127.0.0.1:{free_port()}"]
    try:
        for number, (title, step) in enumerate(STEPS, start=1):
            out(f"\n{demo.elapsed()} {number}. {title}")
            await step(demo)
        if dashboard:
            await keep_dashboard(demo)
    finally:
        out(f"\n{demo.elapsed()} stopping {len(demo.procs)} processes (SIGTERM)")
        problems = await stop_all(demo)
    if problems:
        raise CliError("; ".join(problems))
    out(f"{demo.elapsed()} all processes exited cleanly; demo done")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="a CP and three WL nodes on loopback: enrollment, policies, propagation")
    demo.add_argument("--workdir", help="keep PKI, databases and logs here instead of a temp dir removed at the end")
    demo.add_argument("--dashboard", action="store_true",
                      help="serve the web dashboard; after the steps keep the CP running and print a login link")
    demo.set_defaults(func=_run)


def _out(line: str) -> None:
    # Flushed line by line: with --dashboard the login link must reach a pipe (``| tee``) while the CP keeps running.
    print(line, flush=True)


def _run(args: argparse.Namespace) -> int:
    if args.workdir:
        root = Path(args.workdir)
        root.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(root, _out, dashboard=args.dashboard))
    with tempfile.TemporaryDirectory(prefix="xcwl-demo-") as tmp:
        return asyncio.run(run_demo(Path(tmp), _out, dashboard=args.dashboard))
