"""Settings as a `.env` file that loads back (`ragbridge config`, `--sample` documents every
option), and a bad setting as one plain line: `RAGBRIDGE_PORT='abc' (...): expected a whole number`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from ragbridge.settings import Settings

_PLAIN = re.compile(r"[A-Za-z0-9_./:@+,=-]*")
_EXPECTED = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
    "json_invalid": "valid JSON",
    "list_type": 'a JSON list, e.g. ["a", "b"]',
    "dict_type": 'a JSON object, e.g. {"a": "b"}',
    "path_type": "a path",
}


def env_text(settings: Settings, *, show_secrets: bool = False) -> str:
    """The settings as `.env` lines that load back into the same settings."""
    lines = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None or (isinstance(value, SecretStr) and not show_secrets):
            continue
        lines.append(f"RAGBRIDGE_{name.upper()}={_env_value(value)}")
    if not show_secrets and any(
        isinstance(getattr(settings, name), SecretStr) for name in Settings.model_fields
    ):
        lines.append("# secrets left out; `ragbridge config --show-secrets` includes them")
    return "\n".join(lines)


def sample_env() -> str:
    """A documented `.env` with every option at its default."""
    lines = ["# ragbridge configuration. Every option is optional; shown at its default.", ""]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        value = "" if default is None else _text(default)
        lines += [f"# {field.description}", f"RAGBRIDGE_{name.upper()}={value}", ""]
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _env_value(value: Any) -> str:
    text = _text(value)
    if _PLAIN.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def settings_error(exc: ValidationError | SettingsError, env_file: str | Path = ".env") -> str:
    """One line naming the bad variable, its value, where it came from and what is expected."""
    others: list[str] = []
    if isinstance(exc, SettingsError):
        found = re.search(r'field "(\w+)"', str(exc))
        name, expected = found.group(1) if found else "?", "valid JSON"
    else:
        first, *rest = exc.errors()
        name = str(first["loc"][0]) if first["loc"] else "?"
        # pydantic's "Input should be 'a' or 'b'" as "'a' or 'b'"
        plain = first["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        expected = _EXPECTED.get(first["type"]) or plain
        others = [f"RAGBRIDGE_{str(p['loc'][0]).upper()}" for p in rest if p["loc"]]
    variable, path = f"RAGBRIDGE_{name.upper()}", Path(env_file)
    value: str | None = None
    source = "a command-line option"
    if variable in os.environ:
        value, source = os.environ[variable], "from the environment"
    elif path.is_file() and variable in (values := dotenv_values(path)):
        value, source = values[variable], f"from {path}"
    more = f" (also bad: {', '.join(others)})" if others else ""
    return f"bad setting {variable}={value!r} ({source}): expected {expected}{more}"
