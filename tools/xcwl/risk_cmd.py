"""``xcwl risk check --db URL``: rebuild every pair's balance from the CP's stored events and compare.

Wraps ``cp_server.risk.recompute`` (the same rules as the incremental ledger, applied to ``risk_events`` alone).
Reads the CP's database directly (run it where the CP's store is reachable). Exit 0 when every stored balance
equals the recomputation, 1 when any pair differs (each mismatch printed), 2 when the database cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio

import sqlalchemy as sa

from cp_server.risk.ledger import dec_str
from cp_server.risk.recompute import Mismatch, check
from xwl_runtime.db import create_engine

from . import flags
from .errors import EXIT_CHECK_FAILED, CliError
from .output import emit, table
from .serve import db_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    risk = sub.add_parser("risk", help="risk checks on the CP's store")
    r_sub = risk.add_subparsers(dest="risk_cmd", required=True)
    chk = r_sub.add_parser("check", help="incremental balances == recomputation from the stored events (exit 1 if "
                                         "not)")
    flags.add(chk, "--db", required=True, help="the CP's database URL")
    flags.add(chk, "--json", action="store_true", default=False, help="print JSON for machines")
    chk.set_defaults(func=_check)


def _mismatch_dict(m: Mismatch) -> dict[str, str]:
    return {"wl_a": m.wl_a, "wl_b": m.wl_b,
            "stored_exports_a_to_b": dec_str(m.stored.exports_ab),
            "stored_exports_b_to_a": dec_str(m.stored.exports_ba),
            "recomputed_exports_a_to_b": dec_str(m.recomputed.exports_ab),
            "recomputed_exports_b_to_a": dec_str(m.recomputed.exports_ba)}


async def run_check(url: str) -> list[Mismatch]:
    """The mismatches (empty when consistent); a CliError when the store cannot be read."""
    engine = create_engine(url)
    try:
        return await check(engine)
    except sa.exc.SQLAlchemyError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CliError(f"cannot read the CP's risk tables at --db: {first}") from None
    finally:
        await engine.dispose()


def _check(args: argparse.Namespace) -> int:
    mismatches = asyncio.run(run_check(db_url("--db", args.db)))
    rows = [_mismatch_dict(m) for m in mismatches]
    human = ("balances consistent with stored events" if not rows else
             f"{len(rows)} pair(s) differ from the recomputation\n" + table(
                 ["pair", "stored a_to_b", "stored b_to_a", "recomputed a_to_b", "recomputed b_to_a"],
                 [(f"{r['wl_a']}/{r['wl_b']}", r["stored_exports_a_to_b"], r["stored_exports_b_to_a"],
                   r["recomputed_exports_a_to_b"], r["recomputed_exports_b_to_a"]) for r in rows]))
    emit(args.json, {"consistent": not rows, "mismatches": rows}, human)
    return EXIT_CHECK_FAILED if rows else 0
