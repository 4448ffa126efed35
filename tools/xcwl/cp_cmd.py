"""``xcwl cp serve``: run a control-plane process until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from . import flags
from .listen_check import bind_failure, ensure_bindable
from .serve import cp_settings, traced


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cp = sub.add_parser("cp", help="the control plane")
    cp_sub = cp.add_subparsers(dest="cp_cmd", required=True)
    serve = cp_sub.add_parser("serve", help="run the CP (mTLS listener + enrollment listener) until SIGTERM")
    flags.add(serve, "--config", metavar="FILE", help="TOML file with any CP setting (flags and variables override it)")
    flags.add(serve, "--pki", metavar="DIR", help="PKI directory with ca.crt/ca.key and cp.crt/cp.key (required)")
    flags.add(serve, "--db", metavar="URL", help="sqlite:///cp.db or postgresql://user@host/db (required)")
    flags.add(serve, "--listen", metavar="HOST:PORT", help="mTLS listener (default 127.0.0.1:7400)")
    flags.add(serve, "--enroll-listen", metavar="HOST:PORT",
              help="server-TLS listener for node enrollment (default 127.0.0.1:7401)")
    flags.add(serve, "--max-identity-age", metavar="SECONDS",
              help="how long a node identity lives from its enrollment; renewals never extend past it "
                   "(default 30 days; then the node enrolls again with a new bootstrap token)")
    flags.add(serve, "--insecure-dev", action="store_true", help="plaintext; development only")
    _limit_flags(serve)
    flags.add(serve, "--discrepancy-pause-value", metavar="DECIMAL",
              help="pause a pair when an order's two sides disagree by more than this value (reference unit, "
                   "default 1000)")
    flags.add(serve, "--metrics-listen", metavar="HOST:PORT",
              help="serve Prometheus metrics over plain HTTP at /metrics (default: no endpoint)")
    flags.add(serve, "--http-listen", metavar="HOST:PORT",
              help="serve the web dashboard over HTTPS with the CP's certificate (default: no dashboard; "
                   "links from 'xcwl dashboard login')")
    _webhook_flags(serve)
    serve.set_defaults(func=_serve)


def _webhook_flags(serve: argparse.ArgumentParser) -> None:
    # Operator webhook delivery (CpSettings.webhooks, docs/observability.md); checked together at the edge.
    flags.add(serve, "--webhook-max-attempts", metavar="N",
              help="delivery attempts before the dead letter (default 10; 1 = no retry)")
    flags.add(serve, "--webhook-backoff-base", metavar="SECONDS",
              help="delay before the first retry, doubled per attempt with full jitter (default 1)")
    flags.add(serve, "--webhook-backoff-cap", metavar="SECONDS", help="longest retry delay (default 3600)")
    flags.add(serve, "--webhook-replay-window", metavar="SECONDS",
              help="receivers' replay window the signatures are made for; above --webhook-timeout (default 300)")
    flags.add(serve, "--webhook-timeout", metavar="SECONDS", help="deadline of one delivery POST (default 5)")


def _limit_flags(serve: argparse.ArgumentParser) -> None:
    # Limits checked before any work; defaults (CpSettings, RateLimits) in docs/operations.md.
    flags.add(serve, "--max-message-bytes", metavar="BYTES", help="largest request on the mTLS listener")
    flags.add(serve, "--enroll-max-message-bytes", metavar="BYTES", help="largest request on the enrollment listener")
    flags.add(serve, "--rate-limit", metavar="PER_S", help="sustained RPCs per second per identity")
    flags.add(serve, "--rate-burst", metavar="N", help="RPCs an idle identity may send at once")
    flags.add(serve, "--max-streams", metavar="N", help="concurrent streams per identity")
    flags.add(serve, "--enroll-rate-limit", metavar="PER_S", help="anonymous RPCs per second per network address")
    flags.add(serve, "--enroll-rate-burst", metavar="N", help="anonymous RPCs per network address at once")


def _serve(args: argparse.Namespace) -> int:
    from cp_server.app import run_cp  # imported late: the server stack is heavy and not needed to parse

    settings = cp_settings(args)
    ensure_bindable("--listen", settings.listen)
    ensure_bindable("--enroll-listen", settings.enroll_listen)
    if settings.dashboard.http_listen:
        ensure_bindable("--http-listen", settings.dashboard.http_listen)
    try:
        with traced("xcwl-cp"):
            asyncio.run(run_cp(settings))
    except RuntimeError as err:
        failure = bind_failure(err)
        if failure is None:
            raise
        raise failure from None
    return 0
