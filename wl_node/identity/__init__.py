"""Identity on the WL node: first enrollment with a bootstrap token, then certificate renewal without restart."""

from .enrollment import EnrollmentError, enroll, load_or_enroll
from .renewal import CertificateRenewer, renewal_component

__all__ = ["CertificateRenewer", "EnrollmentError", "enroll", "load_or_enroll", "renewal_component"]
