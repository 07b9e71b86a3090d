"""Where the credentials passphrase comes from: files the service manager provides.

Accepted, in this order:
1. a systemd credential: ``$CREDENTIALS_DIRECTORY/<name>`` (``LoadCredentialEncrypted=``),
2. a Docker/compose secret: ``/run/secrets/<name>``,
3. a file named by an environment variable (default ``LA_PASSPHRASE_FILE``).

Never from argv (visible in ``ps`` and shell history) and never from an
environment variable holding the value itself (inherited by every child process,
dumped by crash reporters, visible in ``/proc/<pid>/environ``). An environment
variable that looks like it holds the value (``LA_PASSPHRASE``) is refused with
a message saying what to do instead, rather than silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from laptop_agents.security.errors import PassphraseUnavailableError
from laptop_agents.security.secret import SecretStr

DEFAULT_NAME = "la_passphrase"
DEFAULT_FILE_ENV = "LA_PASSPHRASE_FILE"
DOCKER_SECRETS_DIR = Path("/run/secrets")
FORBIDDEN_VALUE_ENVS = ("LA_PASSPHRASE", "LA_CREDENTIALS_PASSPHRASE")
MAX_PASSPHRASE_BYTES = 4096
MIN_PASSPHRASE_CHARS = 8


@dataclass(frozen=True)
class PassphraseSource:
    """How to find the passphrase. ``env`` and ``docker_dir`` are injectable for tests."""

    name: str = DEFAULT_NAME
    file_env: str = DEFAULT_FILE_ENV
    env: Mapping[str, str] | None = None
    docker_dir: Path = DOCKER_SECRETS_DIR
    explicit_file: Path | None = field(default=None)
    """A file path given on the command line (a *path*, not the value): used for
    ``--new-passphrase-file`` during rotation."""

    def _env(self) -> Mapping[str, str]:
        return self.env if self.env is not None else os.environ

    def candidates(self) -> list[tuple[str, Path]]:
        """(description, path) of every place that may hold the passphrase, in priority order."""
        env = self._env()
        found: list[tuple[str, Path]] = []
        if self.explicit_file is not None:
            found.append(("file given on the command line", self.explicit_file))
            return found
        cred_dir = env.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            found.append((f"systemd credential {self.name!r}", Path(cred_dir) / self.name))
        found.append((f"Docker secret {self.name!r}", self.docker_dir / self.name))
        named = env.get(self.file_env)
        if named:
            found.append((f"file named by ${self.file_env}", Path(named)))
        return found

    def describe(self) -> str:
        return ", ".join(f"{d} ({p})" for d, p in self.candidates())

    def read(self) -> SecretStr:
        """The passphrase; PassphraseUnavailableError (one line) if no source yields one."""
        env = self._env()
        leaked = [name for name in FORBIDDEN_VALUE_ENVS if env.get(name)]
        if leaked:
            raise PassphraseUnavailableError(
                f"refusing a passphrase from environment variable {leaked[0]}: put it in a file and set "
                f"${self.file_env} to its path, or use a systemd credential / Docker secret named {self.name!r}"
            )
        for description, path in self.candidates():
            if not path.is_file():
                if description.startswith(("file named", "file given")):
                    raise PassphraseUnavailableError(f"passphrase file {path} ({description}) does not exist")
                continue
            return _read_passphrase_file(path, description)
        raise PassphraseUnavailableError(
            f"no passphrase found: provide a systemd credential or Docker secret named {self.name!r}, "
            f"or set ${self.file_env} to a file holding it"
        )


def _read_passphrase_file(path: Path, description: str) -> SecretStr:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PassphraseUnavailableError(f"cannot read passphrase {description} at {path}: {exc.strerror}") from None
    if len(raw) > MAX_PASSPHRASE_BYTES:
        raise PassphraseUnavailableError(f"passphrase {description} at {path} is larger than {MAX_PASSPHRASE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PassphraseUnavailableError(f"passphrase {description} at {path} is not UTF-8 text") from None
    value = text.rstrip("\r\n")  # editors add a trailing newline; keep inner whitespace
    if len(value) < MIN_PASSPHRASE_CHARS:
        raise PassphraseUnavailableError(
            f"passphrase {description} at {path} is shorter than {MIN_PASSPHRASE_CHARS} characters"
        )
    return SecretStr(value)
