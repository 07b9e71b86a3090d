"""Reading the configuration: the shell's half of :mod:`laptop_agents.core.config_models`.

Core keeps the models and their pure validation (``assemble_config``: precedence CLI flag > environment > file >
default, one clear ConfigError line); this module does the I/O core must not: it reads the three files under the
config directory (strict YAML 1.2 core-schema scalars, duplicate keys refused) and the process environment, and
renders the default files `la doctor --fix` writes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from laptop_agents.core.config_models import (
    RISK_FILE,
    SETTINGS_FILE,
    STRATEGY_FILE,
    AppConfig,
    RiskConfig,
    Settings,
    StrategyConfig,
    assemble_config,
)
from laptop_agents.core.errors import ConfigError


def load_config(
    config_dir: Path,
    env: Mapping[str, str] | None = None,
    cli_settings: Mapping[str, Any] | None = None,
) -> AppConfig:
    """Read and validate all three files (settings.yaml may be absent) with ``env`` (default: this process's
    environment) and the command line's settings; raise ConfigError with one clear line."""
    return assemble_config(Path(config_dir), _read, os.environ if env is None else env, cli_settings)


def _read(path: Path, required: bool) -> dict[str, Any]:
    return read_config_file(path) if required or path.exists() else {}


class StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars: only true/false are booleans (not yes/no/on/off),
    integers are plain decimal digits (no 0x/0o/sexagesimal/underscores), and timestamps stay text."""


_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp")}
StrictYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _CORE_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
StrictYamlLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
StrictYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _construct_unique_mapping(loader: StrictYamlLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    """A key written twice is refused: YAML would silently keep the last one, so an operator reading the first
    would believe another limit is in force. Merge keys (``<<: *anchor``) may still be overridden."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        except TypeError:  # an unhashable key: the base constructor refuses it
            pass
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictYamlLoader.construct_mapping = _construct_unique_mapping  # type: ignore[assignment,method-assign]


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The JSON counterpart of :func:`_construct_unique_mapping`."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """One config file (JSON by its suffix, else strict YAML) as a mapping; ConfigError with one line if it is
    missing, unreadable, not valid or not a mapping."""
    if not path.exists():
        raise ConfigError(f"missing config file {path}: run `la doctor --fix` to write the defaults")
    try:
        text = path.read_text(encoding="utf-8")
        data = (json.loads(text, object_pairs_hook=_unique_json_object) if path.suffix == ".json"
                else yaml.load(text, Loader=StrictYamlLoader))  # noqa: S506
    except (ValueError, yaml.YAMLError) as exc:  # ValueError: bad JSON or UTF-8, a duplicate key, a giant integer
        detail = str(exc).splitlines()[0]
        raise ConfigError(f"invalid config {path}: not valid {path.suffix.lstrip('.').upper()}: {detail}") from None
    except RecursionError:
        raise ConfigError(f"invalid config {path}: nested too deeply to be a config file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {path}: the top level must be a mapping of fields")
    return data


def default_files() -> dict[Path, str]:
    """The default config files' text, as `la doctor --fix` writes them (and as shipped in config/)."""
    return {
        STRATEGY_FILE: json.dumps(_plain(StrategyConfig().model_dump()), indent=2) + "\n",
        RISK_FILE: "# Risk limits. May tighten the hard ceilings in core/hard_limits.py, never loosen them.\n"
        + yaml.safe_dump(_plain(RiskConfig().model_dump()), sort_keys=False),
        SETTINGS_FILE: "# Runtime settings. Override any field with LA_<SECTION>__<FIELD>,"
        " e.g. LA_SESSION__STALE_DATA_TIMEOUT_SEC=30\n"
        + yaml.safe_dump(_plain(Settings().model_dump()), sort_keys=False),
    }


def _plain(data: Any) -> Any:
    """Decimals as plain JSON/YAML numbers, so the files read naturally."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, Decimal):
        return int(data) if data == data.to_integral_value() else float(data)
    return data
