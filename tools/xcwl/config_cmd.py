"""``xcwl config show``: the effective configuration of a CP or a node, as ``serve`` would use it, secrets redacted.

Sources in precedence order (lowest first): defaults, ``--config FILE``, ``XCWL_CP__*``/``XCWL_WL__*`` variables, the
serve flags' own variables (``XCWL_DB`` …). Every setting is listed, nested tables included; required settings
that no source gives are shown as not set. Bad values and unknown keys are refused exactly as ``serve`` refuses
them. The output is TOML that ``--config`` accepts (with ``--json``: one JSON document).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cp_server.settings import CpSettings
from wl_node.settings import NodeSettings

from . import flags
from .config_file import build, merge, plain, to_toml, typed_fields
from .output import emit
from .serve import CP_ENV_PREFIX, CP_FLAGS, WL_ENV_PREFIX, WL_FLAGS, file_and_env, flag_env_layer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="configuration of the CP and the nodes")
    config_sub = config.add_subparsers(dest="config_cmd", required=True)
    show = config_sub.add_parser("show", help="print the effective configuration (secrets redacted)")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--cp", dest="kind", action="store_const", const="cp", help="the CP's (default)")
    which.add_argument("--wl", dest="kind", action="store_const", const="wl", help="a WL node's")
    flags.add(show, "--config", metavar="FILE", help="the TOML file serve would read")
    flags.add(show, "--json", action="store_true", default=False, help="print JSON for machines")
    show.set_defaults(func=_show, kind="cp")


def effective(kind: str, config: Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    """Every setting of the CP (``kind`` "cp") or a node ("wl") from the file and the variables, as plain data;
    required settings that are not set are None."""
    cls: type[Any] = CpSettings if kind == "cp" else NodeSettings
    specs, prefix = (CP_FLAGS, CP_ENV_PREFIX) if kind == "cp" else (WL_FLAGS, WL_ENV_PREFIX)
    data = merge(file_and_env(cls, str(config) if config else None, prefix, env), flag_env_layer(env, specs))
    typed = typed_fields(cls, data)
    missing = {f.name: None for f in dataclasses.fields(cls) if f.name not in typed
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if not missing:
        build(cls, data)  # the checks of the settings classes themselves
    settings = cls(**missing, **typed)  # placeholders only for display
    out: dict[str, Any] = plain(settings)
    return out


def _show(args: argparse.Namespace) -> int:
    data = effective(args.kind, Path(args.config) if args.config else None, os.environ)
    unset = [k for k, v in data.items() if v is None]
    human = to_toml(data)
    if unset:
        human = "\n".join(f"# {key}: not set (required to serve)" for key in unset) + "\n" + human
    emit(args.json, data, human)
    return 0
