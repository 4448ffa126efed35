"""Fixtures of the security suite that live in other test packages' conftest files."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.cp_server.identity.harness import IdentityCp, running_identity_cp
from tests.support.pki import PkiFixture


@pytest.fixture
async def identity_cp(pki: PkiFixture, db_url: str) -> AsyncIterator[IdentityCp]:
    """A real CP serving IdentityService (production pipeline, both listeners) on SQLite and PostgreSQL."""
    async with running_identity_cp(pki, db_url) as cp:
        yield cp
