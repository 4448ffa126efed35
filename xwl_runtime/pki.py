"""The CP's certificate authority and the PKI directory layout.

Keys are ECDSA P-256; certificates carry exactly one SPIFFE URI SAN naming the principal, the DNS name the CA
assigns to that principal (``xwl_runtime.identity.pinned_name``, which clients pin), and the DNS/IP names the
CA's caller chose for it (a WL's endpoint names from the CP's registry; the CP's names from ``xcwl pki init``).
Names in a CSR are never used: the CA decides every name. Wildcards and other names under the reserved suffix
are refused here whoever asks.

Directory layout (``--pki DIR``)::

    ca.crt ca.key            the CA (only on the CP's machine)
    cp.crt cp.key            the CP's server/client certificate
    wl-<id>.crt wl-<id>.key  a WL node (written by enrollment or ``xcwl pki issue --wl``)
    ops-<name>.crt/.key      an operator
    app-<wl>-<name>.crt/.key one of a WL's own services (local API caller)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .identity import Identity, Kind, identity_of_certificate, is_reserved_name, pinned_name
from .safe_files import PRIVATE_MODE, PUBLIC_MODE, write_atomically

DEFAULT_LEAF_LIFETIME = dt.timedelta(hours=24)
CA_LIFETIME = dt.timedelta(days=3650)
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
"""Default extra names of the CP's own certificate from ``pki init`` (local demo, grpcurl); never given to a WL."""


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("only ECDSA keys are supported")
    return key


def _general_names(identity: Identity, dns_names: tuple[str, ...]) -> list[x509.GeneralName]:
    """The SAN: the SPIFFE URI, the pinned name, then ``dns_names`` (IP literals as IP addresses)."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe_id),
                                     x509.DNSName(pinned_name(identity))]
    for name in dict.fromkeys(n.lower() for n in dns_names):
        if name == pinned_name(identity):
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        if "*" in name or is_reserved_name(name):
            # A wildcard or another identity's pinned name would let the holder pose as someone else.
            raise ValueError(f"the CA does not certify the name {name[:64]!r}")
        names.append(x509.DNSName(name))
    return names


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate with its private key (absent when issued for a CSR)."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None

    @property
    def cert_pem(self) -> bytes:
        return cert_to_pem(self.certificate)

    @property
    def key_pem(self) -> bytes:
        if self.key is None:
            raise ValueError("no private key: issued for a CSR")
        return key_to_pem(self.key)


class CertificateAuthority:
    """Signs leaf certificates for SPIFFE identities."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.certificate = certificate
        self.key = key

    @classmethod
    def create(cls, *, now: dt.datetime | None = None, common_name: str = "XporY Cross-WL CA") -> CertificateAuthority:
        now = now or dt.datetime.now(dt.UTC)
        key = new_private_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return cert_to_pem(self.certificate)

    def sign(
        self,
        identity: Identity,
        public_key: ec.EllipticCurvePublicKey,
        *,
        dns_names: tuple[str, ...] = (),
        lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME,
        now: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A leaf certificate for ``identity`` over ``public_key``, valid for ``lifetime`` from now.

        ``not_after``, when given, caps the validity (a renewal never outlives its identity's maximum age).
        """
        now = now or dt.datetime.now(dt.UTC)
        start = not_before or (now - dt.timedelta(minutes=1))
        end = now + lifetime if not_after is None else min(now + lifetime, not_after)
        if end <= start:
            raise ValueError("the certificate would be valid for no time at all")
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.spiffe_id)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(_general_names(identity, dns_names)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        identity: Identity,
        *,
        dns_names: tuple[str, ...] = (),
        lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME,
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """A new key pair and its certificate."""
        key = new_private_key()
        cert = self.sign(identity, key.public_key(), dns_names=dns_names, lifetime=lifetime, now=now)
        return IssuedCertificate(cert, key)

    def sign_csr(
        self,
        csr_pem: bytes,
        identity: Identity,
        *,
        dns_names: tuple[str, ...] = (),
        lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME,
        now: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Sign a CSR's key for ``identity`` with exactly the names the CA chose.

        Only the CSR's public key is used: its subject and every name it asks for are ignored. The certificate
        carries the SPIFFE URI of ``identity``, its pinned name and ``dns_names`` (the registry's names).
        """
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature does not verify")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError("CSR key must be ECDSA P-256")
        return self.sign(identity, public_key, dns_names=dns_names, lifetime=lifetime, now=now, not_after=not_after)


def make_csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A PEM CSR for ``key`` that asks for no name: the CA decides the certificate's names by itself."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xporty-node")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


# --- directory layout -------------------------------------------------------------------------------------


def file_stem(identity: Identity) -> str:
    """The file name stem for an identity in a PKI directory."""
    if identity.kind is Kind.CP:
        return "cp"
    if identity.kind is Kind.WL:
        return f"wl-{identity.wl_id}"
    if identity.kind is Kind.APP:
        return f"app-{identity.wl_id}-{identity.name}"
    return f"ops-{identity.name}"


def write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically with mode 0600 from its first byte (fresh O_EXCL temporary, see ``safe_files``)."""
    write_atomically(path, data, mode=PRIVATE_MODE)


def write_public(path: Path, data: bytes) -> None:
    """Write a public file (a certificate) atomically, mode 0644."""
    write_atomically(path, data, mode=PUBLIC_MODE)


@dataclass(frozen=True)
class PkiDir:
    """Paths in a PKI directory."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def cert(self, identity: Identity) -> Path:
        return self.root / f"{file_stem(identity)}.crt"

    def key(self, identity: Identity) -> Path:
        return self.root / f"{file_stem(identity)}.key"

    def init_ca(self, *, cp_dns_names: tuple[str, ...] = LOOPBACK_NAMES) -> CertificateAuthority:
        """Create the CA and the CP's certificate (pinned name + ``cp_dns_names``); never replaces a CA."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.ca_cert.exists():
            raise FileExistsError(f"{self.ca_cert} exists; refusing to replace the CA")
        ca = CertificateAuthority.create()
        write_private(self.ca_key, key_to_pem(ca.key))
        write_public(self.ca_cert, ca.cert_pem)
        self.store(ca.issue(Identity.cp(), dns_names=cp_dns_names, lifetime=dt.timedelta(days=365)), Identity.cp())
        return ca

    def load_ca(self) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        return CertificateAuthority(cert, load_key(self.ca_key.read_bytes()))

    def store(self, issued: IssuedCertificate, identity: Identity) -> tuple[Path, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        write_private(self.key(identity), issued.key_pem)
        write_public(self.cert(identity), issued.cert_pem)
        return self.cert(identity), self.key(identity)

    def issue(
        self, identity: Identity, *, dns_names: tuple[str, ...] = (), lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME
    ) -> tuple[Path, Path]:
        """Issue offline with the CA key in this directory and store the pair."""
        return self.store(self.load_ca().issue(identity, dns_names=dns_names, lifetime=lifetime), identity)

    def has(self, identity: Identity) -> bool:
        return self.cert(identity).exists() and self.key(identity).exists()


def certificate_identity(pem: bytes) -> Identity | None:
    return identity_of_certificate(x509.load_pem_x509_certificate(pem))


def not_after(pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def not_before(pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(pem).not_valid_before_utc
