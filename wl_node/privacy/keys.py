"""Where a node's data keys come from: the settings' JSON (environment), else the key file (created 0600)."""

from __future__ import annotations

from pathlib import Path

from xwl_runtime.fieldcrypt import KeyMaterial, Keyring

from ..settings import NodeSettings

DEFAULT_KEY_FILE = "data-keys.json"


def key_file(settings: NodeSettings) -> Path:
    """The node's key file path (``data_key_file``, or ``<state_dir>/data-keys.json``)."""
    return settings.data_key_file or settings.state_dir / DEFAULT_KEY_FILE


def node_keyring(settings: NodeSettings) -> Keyring:
    """The keyring a node encrypts personal data with."""
    if settings.data_keys_json:
        return Keyring(KeyMaterial.from_json(settings.data_keys_json))
    return Keyring.from_file(key_file(settings))
