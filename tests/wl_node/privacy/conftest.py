"""Fixtures of the privacy tests: per-node databases (catalog worlds), and an exporter + importer pair whose importer
encrypts with a key file (checkout)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import dbs  # noqa: F401 - fixture
from tests.wl_node.checkout.conftest import importer_url  # noqa: F401 - fixture
from tests.wl_node.checkout.harness import ROOMY_CONFIG, FakeIdentityCp, Importer, start_identity_cp, start_importer
from tests.wl_node.orders.harness import start_exporter
from xwl_runtime.fieldcrypt import Keyring

BUYER = "buyer 529.982.247-25 maria@example.com"
"""A buyer reference holding what the field says it must not: a CPF and an e-mail."""


@pytest.fixture
async def importer(pki: PkiFixture, db_url: str, importer_url: str,  # noqa: F811 - fixture
                   tmp_path: Path) -> AsyncIterator[Importer]:
    cp: FakeIdentityCp = await start_identity_cp(pki)
    exporter = await start_exporter(pki, db_url)
    await exporter.add_offer("o1", stock=500)
    node = await start_importer(pki, importer_url, cp.target, [exporter], config=ROOMY_CONFIG,
                                keyring=Keyring.from_file(tmp_path / "keys" / "data-keys.json"))
    await node.wait_token()
    try:
        yield node
    finally:
        await node.stop()
        await exporter.stop()
        await cp.stop()
