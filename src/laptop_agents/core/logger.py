"""JSON logging to system.jsonl, human lines to the console.

Every record in system.jsonl has `timestamp` (ISO 8601, UTC, Z), `level`,
`message` and `component` (the logger name below `laptop_agents.`), plus any
`extra=` fields. Loggers are named per module, so the component says where.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter

ROOT = "laptop_agents"
_OWNED = "_la_owned"
_HANDLER_FILTERS: list[logging.Filter] = []
# the console level the command line chose (--quiet / --verbose); later calls that pass none keep it
_console_level = logging.INFO


def console_level_for(quiet: bool = False, verbose: bool = False) -> int:
    """--quiet: warnings and errors only; --verbose: also debug lines (signals, rejections); else info."""
    return logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO


def add_handler_filter(flt: logging.Filter) -> None:
    """Attach `flt` to every handler setup_logging makes, now and later (e.g. secret masking).

    Handler-level, so records propagated from child loggers pass through it too.
    """
    if flt not in _HANDLER_FILTERS:
        _HANDLER_FILTERS.append(flt)
    for handler in logging.getLogger(ROOT).handlers:
        if getattr(handler, _OWNED, False) and flt not in handler.filters:
            handler.addFilter(flt)


class _SystemJsonFormatter(JsonFormatter):
    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        ts = datetime.fromtimestamp(record.created, tz=UTC)
        log_record["timestamp"] = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
        log_record["level"] = record.levelname
        name = record.name
        log_record["component"] = name[len(ROOT) + 1:] if name.startswith(ROOT + ".") else name
        log_record.pop("levelname", None)
        log_record.pop("name", None)
        rest = {k: v for k, v in log_record.items() if k not in ("timestamp", "level", "component", "message")}
        head = {k: log_record.get(k) for k in ("timestamp", "level", "component", "message")}
        log_record.clear()
        log_record.update(head)
        log_record.update(rest)


def _ordered_formatter() -> logging.Formatter:
    return _SystemJsonFormatter("%(message)s", json_ensure_ascii=False, reserved_attrs=None)


def setup_logging(system_log: Path | None, console_level: int | None = None) -> None:
    """(Re)configure the package logger: system.jsonl (DEBUG+) and stderr (console_level+).

    ``console_level`` None keeps the level set by an earlier call (the command line's --quiet/--verbose):
    a session re-runs this once its run directory exists and must not undo the operator's choice.
    """
    global _console_level
    if console_level is None:
        console_level = _console_level
    _console_level = console_level
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        if getattr(handler, _OWNED, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG)
    root.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%H:%M:%S"))
    setattr(console, _OWNED, True)
    for flt in _HANDLER_FILTERS:
        console.addFilter(flt)
    root.addHandler(console)
    if system_log is not None:
        system_log.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(system_log, encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(_ordered_formatter())
        setattr(fh, _OWNED, True)
        for flt in _HANDLER_FILTERS:
            fh.addFilter(flt)
        root.addHandler(fh)


def flush_logging() -> None:
    for handler in logging.getLogger(ROOT).handlers:
        handler.flush()
