"""A throw-away PKI for tests: CA, CP, WL nodes, operators, plus a foreign CA and an expired certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xwl_runtime.identity import Identity
from xwl_runtime.pki import CertificateAuthority, PkiDir, write_private, write_public
from xwl_runtime.tls import KeyPair, TlsMaterial


@dataclass
class PkiFixture:
    """Paths and TLS material for the identities tests use."""

    dir: PkiDir

    def material(self, identity: Identity) -> TlsMaterial:
        if not self.dir.has(identity):
            self.dir.issue(identity)
        return TlsMaterial.from_pki(self.dir, identity)

    def files(self, identity: Identity) -> tuple[Path, Path, Path]:
        """(ca, cert, key) paths, issuing the identity's certificate on first use (grpcurl wants files)."""
        if not self.dir.has(identity):
            self.dir.issue(identity)
        return self.dir.ca_cert, self.dir.cert(identity), self.dir.key(identity)

    def foreign_material(self, identity: Identity) -> TlsMaterial:
        """A certificate for ``identity`` signed by another CA (trusting our CA, so only the server refuses)."""
        other = CertificateAuthority.create(common_name="Not XporY")
        issued = other.issue(identity)
        return TlsMaterial(self.dir.ca_cert.read_bytes(), KeyPair(issued.cert_pem, issued.key_pem))

    def expired_material(self, identity: Identity) -> TlsMaterial:
        """A certificate from our CA that expired an hour ago."""
        ca = self.dir.load_ca()
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        issued = ca.issue(identity, lifetime=dt.timedelta(days=1) - dt.timedelta(hours=1), now=past)
        return TlsMaterial(self.dir.ca_cert.read_bytes(), KeyPair(issued.cert_pem, issued.key_pem))

    def write_material(self, material: TlsMaterial, stem: str) -> tuple[Path, Path, Path]:
        cert = self.dir.root / f"{stem}.crt"
        key = self.dir.root / f"{stem}.key"
        write_public(cert, material.pair.cert_pem)
        write_private(key, material.pair.key_pem)
        return self.dir.ca_cert, cert, key


def make_test_pki(root: Path) -> PkiFixture:
    pki = PkiDir(root)
    pki.init_ca()
    return PkiFixture(pki)


def csr_asking_for(
    key: ec.EllipticCurvePrivateKey, *, dns: tuple[str, ...] = (), uris: tuple[str, ...] = (),
    common_name: str = "xporty-node",
) -> bytes:
    """A CSR that asks for whatever names an attacker likes (DNS names, IPs, URIs): the CA must ignore them."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    for name in dns:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
