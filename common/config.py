"""Configuration by file and environment, validated at start with messages that say what is wrong.

Each part declares a pydantic model (`extra="forbid"`, a description on every field). `load_config` reads an
optional TOML file, then overlays environment variables named PREFIX_FIELD (nested fields with a double
underscore: KETNOI_AGENT_SITE__CAMERA_NETWORKS), and raises `ConfigError` with one line per problem.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """The configuration cannot be used; the message lists every problem found."""


def _env_value(raw: str) -> Any:
    # Lists and tables can be given as JSON; anything else stays a string for pydantic to coerce.
    stripped = raw.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def _overlay_env(data: dict[str, Any], prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    head = prefix.upper() + "_"
    for name, raw in environ.items():
        if not name.startswith(head) or name == head:
            continue
        path = name[len(head) :].lower().split("__")
        node = data
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[path[-1]] = _env_value(raw)
    return data


def load_config(
    model: type[M],
    path: str | Path | None,
    env_prefix: str,
    environ: Mapping[str, str] | None = None,
) -> M:
    """The validated configuration from `path` (TOML, optional) and the environment."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {file} is not valid TOML: {exc}") from None
    data = _overlay_env(data, env_prefix, os.environ if environ is None else environ)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(top level)"
            env = env_prefix.upper() + "_" + "__".join(str(p).upper() for p in err["loc"] if isinstance(p, str))
            lines.append(f"  {where} (env {env}): {err['msg']}")
        source = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{source}:\n" + "\n".join(lines)) from None
