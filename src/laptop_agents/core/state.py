"""StateManager: atomic, versioned state files.

Every write goes to a temp file in the same directory, is fsynced, renamed over
the target, and the directory is fsynced: a crash leaves the old file or the new
one, never half of one. Every file carries `schema_version` and `kind`. A file
that is corrupted, of another kind or of an unknown version is refused with a
clear message and left exactly as it is, never silently reset.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from laptop_agents.core.errors import StateError
from laptop_agents.core.models import utc_iso

SCHEMA_VERSION = 1
_RESERVED = ("schema_version", "kind", "saved_at")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temp file, fsync, rename, fsync dir). A symlink is followed: its target
    is replaced (in the target's directory), so state kept on another volume through a link stays there."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_dumps = json.JSONEncoder().encode  # C-accelerated: json's `indent` would switch to the pure-Python encoder


def render_state(record: dict[str, Any]) -> str:
    """The state file's text: one top-level field per line and one list item (a trade) per line.

    As readable to an operator as an indented file, but every value goes through the C encoder: written on
    every fill, a long trade list in ``json.dumps(indent=...)`` costs milliseconds per save on the loop.
    """
    fields = []
    for key, value in record.items():
        if isinstance(value, list) and value:
            items = ",\n  ".join(_dumps(item) for item in value)
            fields.append(f" {_dumps(key)}: [\n  {items}\n ]")
        else:
            fields.append(f" {_dumps(key)}: {_dumps(value)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


class StateManager:
    """Reads and writes the state files of one mode's state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        return self.directory / name

    def save(self, name: str, kind: str, data: dict[str, Any], *, saved_at: datetime) -> Path:
        """Write ``data`` atomically as ``name``, stamped with ``saved_at`` (the shell's clock: core reads none)."""
        clash = [k for k in _RESERVED if k in data]
        if clash:
            raise ValueError(f"state data may not use reserved keys {clash}")
        record = {
            "schema_version": SCHEMA_VERSION,
            "kind": kind,
            "saved_at": utc_iso(saved_at),
            **data,
        }
        path = self.path(name)
        atomic_write_text(path, render_state(record))
        return path

    def load(self, name: str, kind: str) -> dict[str, Any] | None:
        """The saved data, or None if no file exists; StateError if it cannot be trusted."""
        path = self.path(name)
        hint = "move it aside or restore a backup (`la clean --all` starts from scratch); it was left untouched"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if path.is_symlink():  # e.g. a state volume that is not mounted: missing state, not a fresh account
                raise StateError(f"state file {path} is a symlink to {os.readlink(path)}, which is missing; "
                                 f"mount or restore it, or remove the link to start afresh") from None
            return None
        except UnicodeDecodeError:
            raise StateError(f"corrupted state file {path}: not UTF-8 text; {hint}") from None
        except OSError as exc:
            raise StateError(f"cannot read state file {path}: {exc.strerror}") from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"corrupted state file {path}: not valid JSON ({exc.msg} at line {exc.lineno}); {hint}") from None
        except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, nesting beyond the stack
            raise StateError(f"corrupted state file {path}: not usable JSON ({type(exc).__name__}); {hint}") from None
        if not isinstance(record, dict):
            raise StateError(f"corrupted state file {path}: expected a JSON object; {hint}")
        if record.get("kind") != kind:
            raise StateError(f"state file {path} holds {record.get('kind')!r}, expected {kind!r}; {hint}")
        version = record.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StateError(
                f"state file {path} has schema_version {version!r}; this version of la reads {SCHEMA_VERSION}; {hint}"
            )
        return {k: v for k, v in record.items() if k not in _RESERVED}
