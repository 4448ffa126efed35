"""Flags that also read ``XCWL_*`` environment variables: ``--db`` falls back to ``XCWL_DB`` and so on.

Only the CLI reads the environment; library code gets typed settings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any


def env_name(flag: str) -> str:
    return "XCWL_" + flag.lstrip("-").replace("-", "_").upper()


def add(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    env: Mapping[str, str] | None = None,
    required: bool = False,
    default: Any = None,
    **kwargs: Any,
) -> None:
    """Add ``flag`` whose default comes from ``XCWL_<FLAG>`` when set (so a set variable satisfies required)."""
    environ = os.environ if env is None else env
    from_env = environ.get(env_name(flag))
    if from_env is not None:
        if kwargs.get("action") == "store_true":
            default = from_env.lower() in ("1", "true", "yes", "on")
        else:
            default = from_env
        required = False
    help_text = kwargs.pop("help", "")
    parser.add_argument(flag, required=required, default=default, help=f"{help_text} [env {env_name(flag)}]", **kwargs)
