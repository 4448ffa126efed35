"""The CP's certificate authority and the PKI directory layout.

Keys are ECDSA P-256; certificates carry exactly one SPIFFE URI SAN naming the principal, plus the DNS/IP
names a server answers on (``localhost`` and ``127.0.0.1`` always, for loopback and grpcurl).

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

from .identity import Identity, Kind, identity_of_certificate
from .safe_files import PRIVATE_MODE, PUBLIC_MODE, write_atomically

DEFAULT_LEAF_LIFETIME = dt.timedelta(hours=24)
CA_LIFETIME = dt.timedelta(days=3650)
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


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
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe_id)]
    for name in dict.fromkeys((*LOOPBACK_NAMES, *dns_names)):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
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
    ) -> x509.Certificate:
        """A leaf certificate for ``identity`` over ``public_key``, valid for ``lifetime`` from now."""
        now = now or dt.datetime.now(dt.UTC)
        start = not_before or (now - dt.timedelta(minutes=1))
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.spiffe_id)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + lifetime)
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
        lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Sign a CSR for ``identity``. Only the CSR's key and DNS/IP names are used; the CA sets the URI SAN."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature does not verify")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError("CSR key must be ECDSA P-256")
        dns: list[str] = []
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns.extend(san.get_values_for_type(x509.DNSName))
            dns.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            pass
        return self.sign(identity, public_key, dns_names=tuple(dns), lifetime=lifetime, now=now)


def make_csr(key: ec.EllipticCurvePrivateKey, dns_names: tuple[str, ...] = ()) -> bytes:
    """A PEM CSR for ``key`` asking for the given DNS/IP names."""
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys((*LOOPBACK_NAMES, *dns_names)):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xporty-node")]))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
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

    def init_ca(self) -> CertificateAuthority:
        """Create the CA and the CP's certificate; refuses to overwrite an existing CA."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.ca_cert.exists():
            raise FileExistsError(f"{self.ca_cert} exists; refusing to replace the CA")
        ca = CertificateAuthority.create()
        write_private(self.ca_key, key_to_pem(ca.key))
        write_public(self.ca_cert, ca.cert_pem)
        self.store(ca.issue(Identity.cp(), lifetime=dt.timedelta(days=365)), Identity.cp())
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
