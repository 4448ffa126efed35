"""Every CP and node setting is reachable from a TOML file, overridable by variables and flags, and shown.

The file is generated from the settings dataclasses themselves (a changed value per field, nested tables too), so a
field added without a configuration form fails here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cp_server.settings import CpSettings
from tests.support.pki import PkiFixture
from wl_node.settings import NodeSettings
from xcwl import cli
from xcwl.config_cmd import effective
from xcwl.config_file import REDACTED, plain, to_toml
from xcwl.errors import CliError
from xcwl.serve import cp_settings, node_settings
from xwl_runtime.identity import Identity

REQUIRED = {"wl_id": "wl-a", "cp_target": "127.0.0.1:7999", "db_url": "sqlite:///from-file.db",
            "cp_enroll_target": "127.0.0.1:7998", "http_listen": "127.0.0.1:7443"}
"""Values for the fields whose default is empty or absent (the sample cannot derive one from the default)."""


def _changed(name: str, kind: Any, default: Any, tmp: Path) -> Any:
    """A valid value of ``kind`` different from ``default`` (cross-field rules kept: thresholds scale together)."""
    if name in REQUIRED:
        return REQUIRED[name]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # ``X | None``: a value of X
        (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
        default = None
    if dataclasses.is_dataclass(kind):
        return sample(kind, tmp)
    if kind is bool:
        return not default
    if kind is int:
        return default + 1
    if kind is float:
        return default / 2
    if kind is Decimal:
        return default * Decimal("0.9")
    if kind is dt.timedelta:
        return default / 2 if default else dt.timedelta(seconds=7)
    if kind is Path:
        return tmp / name
    if kind is str:
        host, sep, port = (default or "").rpartition(":")
        if sep and port.isdigit():
            return f"{host}:{int(port) + 1}"
        return f"{default or name}-set"
    if typing.get_origin(kind) is tuple:
        return ("shop", "crm")
    raise AssertionError(f"{name}: no sample for type {kind!r}: give the new setting a configuration form")


def sample(cls: type[Any], tmp: Path) -> Any:
    """An instance of ``cls`` whose every field differs from its default."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        values[f.name] = _changed(f.name, hints[f.name], default, tmp)
    return cls(**values)


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _write(tmp_path: Path, settings: Any, name: str) -> Path:
    data = plain(settings)
    for secret in ("bootstrap_token", "data_keys_json"):
        if secret in data:
            data[secret] = getattr(settings, secret)  # plain() redacts it; the file holds the real one
    path = tmp_path / name
    path.write_text(to_toml(data))
    return path


def test_every_cp_setting_is_set_from_a_file(pki: PkiFixture, tmp_path: Path) -> None:
    wanted = dataclasses.replace(sample(CpSettings, tmp_path), pki_dir=pki.dir.root,
                                 max_identity_age=dt.timedelta(days=15))
    path = _write(tmp_path, wanted, "cp.toml")
    got = cp_settings(cli.build_parser().parse_args(["cp", "serve", "--config", str(path)]), env={})
    assert got == wanted
    defaults = CpSettings(db_url="x", pki_dir=Path("x"))
    for key, value in _leaves(plain(wanted)).items():  # every leaf changed, so the file really set it
        if key not in ("db_url", "pki_dir"):
            assert _leaves(plain(defaults))[key] != value, key


def test_every_node_setting_is_set_from_a_file(pki: PkiFixture, tmp_path: Path) -> None:
    pki.material(Identity.wl("wl-a"))
    wanted = dataclasses.replace(sample(NodeSettings, tmp_path), pki_dir=pki.dir.root, insecure_dev=False)
    path = _write(tmp_path, wanted, "node.toml")
    got = node_settings(cli.build_parser().parse_args(["wl", "serve", "--config", str(path)]), env={})
    assert got == wanted
    assert got.pii_apps == ("shop", "crm") and got.policy_max_staleness == dt.timedelta(minutes=5)


def test_variables_override_the_file_and_flags_override_both(pki: PkiFixture, tmp_path: Path) -> None:
    path = tmp_path / "cp.toml"
    path.write_text(f'pki_dir = "{pki.dir.root}"\ndb_url = "sqlite:///file.db"\nlisten = "127.0.0.1:1"\n'
                    'max_fx_step = "0.05"\n[risk]\nalert_threshold = "0.7"\ndiscrepancy_pause_value = 5\n')
    env = {"XCWL_CP__MAX_FX_STEP": "0.2", "XCWL_CP__RISK__ALERT_THRESHOLD": "0.75"}
    argv = ["cp", "serve", "--config", str(path), "--listen", "127.0.0.1:2", "--discrepancy-pause-value", "7"]
    got = cp_settings(cli.build_parser().parse_args(argv), env=env)
    assert got.max_fx_step == Decimal("0.2")                      # variable over file
    assert got.risk.alert_threshold == Decimal("0.75")            # nested variable over file
    assert got.listen == "127.0.0.1:2"                            # flag over file
    assert got.risk.discrepancy_pause_value == Decimal("7")       # flag over file, nested
    assert got.db_url == "sqlite:///file.db"


@pytest.mark.parametrize(("content", "env", "message"), [
    ('wl_idd = "wl-a"\n', {}, r"--config .*: wl_idd: unknown setting"),
    ("[risk]\nalert_treshold = \"0.7\"\n", {}, r"--config .*: risk.alert_treshold: unknown setting"),
    ("max_fx_step = 0.1\n", {}, r"max_fx_step: expected a decimal written as a string"),
    ('token_lifetime = "5 minutes"\n', {}, r"token_lifetime: expected a duration"),
    ("[rate_limits]\nburst = \"many\"\n", {}, r"rate_limits.burst: expected an integer"),
    ("", {"XCWL_CP__HEARTBEAT_INTERVAL": "soon"}, r"XCWL_CP__\* variables: heartbeat_interval: expected a duration"),
    ("", {"XCWL_CP__NOPE": "1"}, r"XCWL_CP__\* variables: nope: unknown setting"),
    ('[risk]\nalert_threshold = "0.5"\n', {}, r"risk: risk thresholds must satisfy"),
    ('listen = "nowhere"\n', {}, r"listen: expected HOST:PORT"),
    ("max_identity_age = 5\n", {}, r"max_identity_age: expected 600 s"),
])
def test_bad_values_and_unknown_keys_are_refused_naming_the_key(
    pki: PkiFixture, tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "cp.toml"
    path.write_text(f'pki_dir = "{pki.dir.root}"\ndb_url = "sqlite:///x.db"\n' + content)
    with pytest.raises(CliError, match=message):
        cp_settings(cli.build_parser().parse_args(["cp", "serve", "--config", str(path)]), env=env)


def test_missing_required_setting_names_flag_variable_and_key(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"--db is required \(db_url is not set: give --db, set XCWL_DB"):
        cp_settings(cli.build_parser().parse_args(["cp", "serve", "--pki", str(tmp_path)]), env={})


def test_config_show_lists_every_setting_and_redacts_secrets(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "node.toml"
    path.write_text('wl_id = "wl-a"\nbootstrap_token = "s3cret-token"\npii_apps = ["shop"]\n')
    monkeypatch.setenv("XCWL_DB", "postgresql://xcwl:pw-123@db.internal/node")
    monkeypatch.setenv("XCWL_WL__POLICY_MAX_STALENESS", "2m")
    assert cli.main(["config", "show", "--wl", "--config", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {f.name for f in dataclasses.fields(NodeSettings)}
    assert shown["bootstrap_token"] == REDACTED and shown["db_url"] == f"postgresql://xcwl:{REDACTED}@db.internal/node"
    assert shown["policy_max_staleness"] == 120.0 and shown["pii_apps"] == ["shop"] and shown["cp_target"] is None
    cp = effective("cp", None, {})
    assert set(_leaves(cp)) == set(_leaves(plain(CpSettings(db_url="x", pki_dir=Path("x")))))
    assert cli.main(["config", "show", "--cp"]) == 0
    text = capsys.readouterr().out
    assert "[risk]\nalert_threshold = \"0.80\"" in text and "[rate_limits]" in text and "s3cret" not in text
