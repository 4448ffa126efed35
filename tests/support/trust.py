"""Test PKI certificates are issued offline (``tests.support.pki``): the CP refuses WL node certificates it never
recorded, so harnesses import them first, through the same store function as ``xcwl cert import``."""

from __future__ import annotations

import datetime as dt

from cp_server.app import CpApp
from cp_server.trust.imports import CertificateImports, Imported
from tests.support.pki import PkiFixture
from xwl_runtime.identity import Identity, Kind

FIXTURE_ACTOR = "spiffe://xporty/ops/test-fixture"


async def import_certificate(app: CpApp, pem: bytes | str) -> Imported:
    """Record one offline-issued WL node certificate in ``app``'s store (audited like an operator import)."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    imports = CertificateImports(app.ctx.engine, app.ctx.ca.certificate, app.ctx.audit)
    return await imports.import_pem(text, actor=FIXTURE_ACTOR, now=dt.datetime.now(dt.UTC))


async def import_identity(app: CpApp, pki: PkiFixture, identity: Identity) -> None:
    """Issue (if needed) and import ``identity``'s certificate when it is a WL node; other kinds need nothing."""
    if identity.kind is Kind.WL:
        await import_certificate(app, pki.material(identity).pair.cert_pem)


async def import_wls(app: CpApp, pki: PkiFixture, *wl_ids: str) -> None:
    """``import_identity`` for each WL node."""
    for wl_id in wl_ids:
        await import_identity(app, pki, Identity.wl(wl_id))
