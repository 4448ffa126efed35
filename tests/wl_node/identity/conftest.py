"""The node-side identity tests run against a real CP on SQLite: the CP's store logic is proven on both
databases in tests/cp_server/identity, and the node's behaviour does not depend on the CP's database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.cp_server.identity.harness import IdentityCp, running_identity_cp
from tests.support.pki import PkiFixture


@pytest.fixture
async def identity_cp(pki: PkiFixture, sqlite_db_url: str) -> AsyncIterator[IdentityCp]:
    async with running_identity_cp(pki, sqlite_db_url) as cp:
        yield cp
