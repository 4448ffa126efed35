"""``xcwl db upgrade|downgrade|current`` on real CP and node stores, SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from xcwl import cli
from xwl_runtime import db


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = cli.main(["db", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def _tables(url: str) -> set[str]:
    engine = db.create_sync_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize(("kind", "branch_step", "table"), [
    ("--wl", "node_risk@-1", "node_meta"),
    ("--cp", "cp_identity@-1", "audit_log"),  # a branch no other revision depends on
])
def test_upgrade_current_downgrade_round_trip(db_url: str, capsys: pytest.CaptureFixture[str], kind: str,
                                              branch_step: str, table: str) -> None:
    code, before = _run(capsys, "current", kind, "--db", db_url)
    assert code == 0 and before["current"] == [] and before["up_to_date"] is False
    code, after = _run(capsys, "upgrade", kind, "--db", db_url)
    # A head that another revision depends on is recorded through its dependant (node_privacy needs catalog and
    # checkout), so "current" may list fewer revisions than "heads" and still be up to date.
    assert code == 0 and after["up_to_date"] is True and set(after["current"]) <= set(after["heads"])
    assert table in _tables(db_url)
    code, stepped = _run(capsys, "downgrade", kind, "--db", db_url, "--to", branch_step)
    assert code == 0 and stepped["up_to_date"] is False
    assert len(set(stepped["current"]) ^ set(after["current"])) == 2  # one branch moved back one revision
    code, base = _run(capsys, "downgrade", kind, "--db", db_url, "--to", "base")
    assert code == 0 and base["current"] == []
    assert table not in _tables(db_url)
    code, again = _run(capsys, "upgrade", kind, "--db", db_url)
    assert code == 0 and again["up_to_date"] is True


def test_failures_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'n.db'}"
    assert cli.main(["db", "downgrade", "--wl", "--db", url, "--to", "no_such_rev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xcwl: error: alembic: ") and "no_such_rev" in err
    assert cli.main(["db", "current", "--cp", "--db", "postgresql://nobody@127.0.0.1:1/none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xcwl: error: --db: OperationalError")
    assert cli.main(["db", "current", "--cp", "--db", "mysql://x"]) == 2
    assert "--db: expected a SQLAlchemy URL" in capsys.readouterr().err
