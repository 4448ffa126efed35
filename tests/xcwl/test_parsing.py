"""Command-line parsing: the commands and flags exist, XCWL_* variables fill flags, requests carry only what was
given, and failures are one line with exit code 2."""

from __future__ import annotations

import argparse
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.pki import PkiFixture
from xcwl import cli, flags
from xcwl.errors import CliError
from xcwl.node_client import app_identity, caller_identity
from xcwl.offer_cmd import offer_from_args
from xcwl.policy_cmd import direction_request, pair_request
from xcwl.serve import cp_settings, node_settings
from xcwl.signal_cmd import signal_request
from xporty.cp.v1 import policy_pb2, signal_pb2
from xwl_runtime.identity import Identity


def test_env_var_fills_a_required_flag_and_the_flag_wins() -> None:
    parser = argparse.ArgumentParser()
    flags.add(parser, "--db", env={"XCWL_DB": "sqlite:///from-env.db"}, required=True)
    flags.add(parser, "--insecure-dev", env={"XCWL_INSECURE_DEV": "yes"}, action="store_true", default=False)
    assert parser.parse_args([]).db == "sqlite:///from-env.db"
    assert parser.parse_args([]).insecure_dev is True
    assert parser.parse_args(["--db", "sqlite:///flag.db"]).db == "sqlite:///flag.db"
    assert flags.env_name("--cp-enroll") == "XCWL_CP_ENROLL"


def test_required_setting_without_flag_env_or_file_is_an_error(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XCWL_PKI", "XCWL_DB", "XCWL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["cp", "serve", "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--pki is required" in err and "XCWL_PKI" in err


def test_cp_serve_reads_the_environment(monkeypatch: pytest.MonkeyPatch, pki: PkiFixture) -> None:
    monkeypatch.setenv("XCWL_PKI", str(pki.dir.root))
    monkeypatch.setenv("XCWL_DB", "sqlite:///cp.db")
    monkeypatch.setenv("XCWL_ENROLL_LISTEN", "127.0.0.1:0")
    args = cli.build_parser().parse_args(["cp", "serve", "--listen", "127.0.0.1:7999"])
    settings = cp_settings(args)
    assert settings.pki_dir == pki.dir.root
    assert settings.db_url == "sqlite:///cp.db"
    assert settings.listen == "127.0.0.1:7999"
    assert settings.enroll_listen == "127.0.0.1:0"
    assert settings.insecure_dev is False


@pytest.mark.parametrize(("value", "expected"), [(None, "1000"), ("250.50", "250.50"), ("0", "0")])
def test_cp_serve_discrepancy_pause_value(pki: PkiFixture, value: str | None, expected: str) -> None:
    base = ["cp", "serve", "--pki", str(pki.dir.root), "--db", "sqlite:///x.db"]
    args = cli.build_parser().parse_args(base + (["--discrepancy-pause-value", value] if value else []))
    assert cp_settings(args).risk.discrepancy_pause_value == Decimal(expected)


@pytest.mark.parametrize("value", ["-1", "1e3", "lots", "NaN"])
def test_cp_serve_refuses_a_bad_discrepancy_pause_value(pki: PkiFixture, value: str) -> None:
    args = cli.build_parser().parse_args(["cp", "serve", "--pki", str(pki.dir.root), "--db", "sqlite:///x.db",
                                          "--discrepancy-pause-value", value])
    with pytest.raises(CliError, match="--discrepancy-pause-value"):
        cp_settings(args)


def test_cp_serve_refuses_a_pki_dir_without_a_ca(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["cp", "serve", "--pki", str(tmp_path), "--db", "sqlite:///x.db"])
    with pytest.raises(CliError, match="ca.crt is missing"):
        cp_settings(args)


def test_wl_serve_settings_and_first_start_needs_a_token(pki: PkiFixture, tmp_path: Path) -> None:
    base = ["wl", "serve", "--wl-id", "wl-a", "--pki", str(pki.dir.root), "--cp", "127.0.0.1:7400",
            "--db", "sqlite:///n.db"]
    with pytest.raises(CliError, match="--bootstrap-token"):
        node_settings(cli.build_parser().parse_args(base))
    args = cli.build_parser().parse_args([*base, "--bootstrap-token", "tok", "--cp-enroll", "127.0.0.1:7401",
                                          "--state-dir", str(tmp_path / "st"), "--listen", "127.0.0.1:0"])
    settings = node_settings(args)
    assert (settings.bootstrap_token, settings.cp_enroll_target) == ("tok", "127.0.0.1:7401")
    assert settings.state_dir == tmp_path / "st"
    with pytest.raises(CliError, match="--cp: expected HOST:PORT"):
        node_settings(cli.build_parser().parse_args([*base, "--cp", "nowhere", "--bootstrap-token", "t",
                                                     "--cp-enroll", "127.0.0.1:7401"]))


def _policy_args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["policy", *argv, "--cp", "127.0.0.1:1", "--pki", "/nonexistent"])


def test_policy_set_sends_only_the_fields_given() -> None:
    request = pair_request(_policy_args("set", "--a", "wl-a", "--b", "wl-b", "--fx", "1.5", "--status", "paused"))
    assert request.fx_rate == "1.5"
    assert request.status == policy_pb2.RELATIONSHIP_STATUS_PAUSED
    assert not request.HasField("imbalance_limit")
    assert not request.HasField("imports_frozen")
    assert not request.force_fx
    frozen = pair_request(_policy_args("set", "--a", "wl-a", "--b", "wl-b", "--freeze", "--force-fx", "--fx", "9"))
    assert frozen.HasField("imports_frozen") and frozen.imports_frozen and frozen.force_fx
    thawed = pair_request(_policy_args("set", "--a", "wl-a", "--b", "wl-b", "--unfreeze"))
    assert thawed.HasField("imports_frozen") and not thawed.imports_frozen
    with pytest.raises(CliError, match="nothing to change"):
        pair_request(_policy_args("set", "--a", "wl-a", "--b", "wl-b"))


def test_policy_direction_flags() -> None:
    request = direction_request(_policy_args("direction", "--exporter", "wl-a", "--importer", "wl-b",
                                             "--import-enabled", "off", "--export-delay", "90"))
    assert request.HasField("import_enabled") and request.import_enabled is False
    assert not request.HasField("destination_visible")
    assert request.export_delay.seconds == 90
    with pytest.raises(SystemExit):
        _policy_args("direction", "--exporter", "wl-a", "--importer", "wl-b", "--visible", "maybe")


def test_missing_operator_certificate_is_one_line_and_exit_2(pki: PkiFixture,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["policy", "status", "--cp", "127.0.0.1:1", "--pki", str(pki.dir.root), "--as", "nobody"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "ops-nobody.crt" in err and "xcwl pki issue" in err


def test_unreachable_cp_is_one_line_and_exit_2(pki: PkiFixture, capsys: pytest.CaptureFixture[str]) -> None:
    pki.files(Identity.ops("alice"))
    code = cli.main(["wl", "list", "--cp", "127.0.0.1:1", "--pki", str(pki.dir.root), "--as", "alice",
                     "--timeout", "1"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("xcwl: error: UNAVAILABLE") or err.startswith("xcwl: error: DEADLINE_EXCEEDED"), err


def test_every_documented_command_parses() -> None:
    parser = cli.build_parser()
    ops = ["--cp", "h:1", "--pki", "p"]
    app = ["--node", "h:2", "--pki", "p", "--as-app", "wl-a/shop"]
    offer = ["--id", "o-1", "--title", "T", "--price", "1.00", "--currency", "XPY-A", "--stock", "1",
             "--manager-name", "N", "--manager-email", "n@x.example", "--manager-phone", "+5511912344321"]
    for argv in (
        ["wl", "add", *ops, "--id", "wl-a", "--name", "A", "--currency", "XPY-A", "--endpoint", "h:2",
         "--bootstrap-token"],
        ["wl", "list", *ops, "--json"],
        ["token", "create", *ops, "--wl", "wl-a"],
        ["policy", "get", *ops, "--a", "wl-a", "--b", "wl-b"],
        ["policy", "status", *ops],
        ["policy", "list", *ops],
        ["policy", "view", *ops, "--wl", "wl-a"],
        ["audit", "list", *ops],
        ["audit", "verify", *ops],
        ["pki", "issue", "--dir", "p", "--ops", "alice"],
        ["demo"],
        ["bench", "policy", "--json", "--nodes", "1,10"],
        ["catalog", "list", *app, "--source-wl", "wl-b", "--category", "tools", "--text", "lamp", "--json"],
        ["catalog", "get", *app, "--offer", "wl-b:o-1"],
        ["offer", "publish", *app, *offer],
        ["offer", "update", *app, *offer],
        ["offer", "withdraw", *app, "--id", "o-1"],
        ["checkout", "buy", *app, "--offer", "wl-b:o-1", "--quantity", "2", "--buyer", "m-1"],
        ["checkout", "get", *app, "--id", "chk_1"],
        ["report", "balance", *ops, "--json"],
        ["report", "discrepancies", *ops],
        ["signal", "send", *ops, "--kind", "disable", "--exporter", "wl-a", "--importer", "wl-b", "--reason", "r"],
        ["signal", "list", *ops],
        ["risk", "check", "--db", "sqlite:///cp.db", "--json"],
    ):
        assert callable(parser.parse_args(argv).func), argv


def test_offer_flags_build_the_offer_and_signal_flags_the_request() -> None:
    args = cli.build_parser().parse_args([
        "offer", "publish", "--node", "h:2", "--pki", "p", "--as-app", "wl-a/shop", "--id", "o-1", "--title", "Lamp",
        "--price", "15.50", "--currency", "XPY-A", "--stock", "3", "--image", "https://i.example/1.png",
        "--image", "https://i.example/2.png", "--manager-name", "Ana", "--manager-email", "ana@x.example",
        "--manager-phone", "+5511912345678"])
    offer = offer_from_args(args)
    assert (offer.offer_id, offer.unit_price.amount, offer.unit_price.currency, offer.stock) == (
        "o-1", "15.50", "XPY-A", 3)
    assert list(offer.image_urls) == ["https://i.example/1.png", "https://i.example/2.png"]
    assert offer.manager.email == "ana@x.example" and not offer.exporter_wl  # the node sets the exporter

    ops = ["--cp", "h:1", "--pki", "p"]
    request = signal_request(cli.build_parser().parse_args(
        ["signal", "send", *ops, "--kind", "DISABLE", "--exporter", "wl-a", "--importer", "wl-b", "--reason", "x"]))
    assert request.kind == signal_pb2.SIGNAL_KIND_DISABLE
    assert (request.exporter_wl, request.importer_wl, request.reason) == ("wl-a", "wl-b", "x")
    with pytest.raises(CliError, match="--reason"):
        signal_request(cli.build_parser().parse_args(
            ["signal", "send", *ops, "--kind", "enable", "--exporter", "a", "--importer", "b", "--reason", " "]))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["signal", "send", *ops, "--kind", "pause", "--exporter", "a",
                                       "--importer", "b", "--reason", "x"])


def test_app_identity_and_caller_flags() -> None:
    assert app_identity("wl-a/shop") == Identity.app("wl-a", "shop")
    for bad in ("wl-a", "wl-a/", "Bad Id/shop"):
        with pytest.raises(CliError, match="--as-app"):
            app_identity(bad)
    base = ["catalog", "list", "--node", "h:2", "--pki", "p"]
    with pytest.raises(CliError, match="who is calling"):
        caller_identity(cli.build_parser().parse_args(base))
    with pytest.raises(CliError, match="one of"):
        caller_identity(cli.build_parser().parse_args([*base, "--as-app", "wl-a/shop", "--as-ops", "alice"]))
    assert caller_identity(cli.build_parser().parse_args([*base, "--as-ops", "alice"])) == Identity.ops("alice")


def test_wl_serve_order_timeout_flag(pki: PkiFixture) -> None:
    base = ["wl", "serve", "--wl-id", "wl-a", "--pki", str(pki.dir.root), "--cp", "127.0.0.1:7400",
            "--db", "sqlite:///n.db", "--bootstrap-token", "t", "--cp-enroll", "127.0.0.1:7401"]
    assert node_settings(cli.build_parser().parse_args(base)).order_timeout == dt.timedelta(milliseconds=300)
    settings = node_settings(cli.build_parser().parse_args([*base, "--order-timeout-ms", "2000"]))
    assert settings.order_timeout == dt.timedelta(seconds=2)
    with pytest.raises(CliError, match="--order-timeout-ms"):
        node_settings(cli.build_parser().parse_args([*base, "--order-timeout-ms", "0"]))
