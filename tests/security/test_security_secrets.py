"""SecretStr, the masking log filter, and passphrase sources."""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import pytest

from laptop_agents.security.errors import PassphraseUnavailableError
from laptop_agents.security.passphrase import PassphraseSource
from laptop_agents.security.secret import (
    REGISTRY,
    SecretMaskingFilter,
    SecretStr,
    install_masking_filter,
)

CANARY = "CANARY-secret-value-7f3a9b"


def test_secret_str_never_renders_its_value() -> None:
    s = SecretStr(CANARY)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", f"{s:>40}", "%s" % s, "{}".format(s), str([s]), str({"k": s})):  # noqa: UP031, UP032
        assert CANARY not in text
    assert s.reveal() == CANARY
    assert s == SecretStr(CANARY) and s != SecretStr("other-value")
    with pytest.raises(TypeError):
        pickle.dumps(s)


def _logger_with_buffer(name: str) -> tuple[logging.Logger, io.StringIO]:
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.filters.clear()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(message)s %(extra_field)s"))
    logger.addHandler(handler)
    install_masking_filter(logger)
    return logger, buf


def test_filter_masks_message_args_exception_and_extras() -> None:
    REGISTRY.add(CANARY)
    logger, buf = _logger_with_buffer("laptop_agents.test_mask")
    logger.info("direct " + CANARY, extra={"extra_field": "x"})
    logger.info("args %s %r", CANARY, {"secret": CANARY}, extra={"extra_field": f"extra {CANARY}"})
    try:
        raise ValueError(f"boom {CANARY}")
    except ValueError:
        logger.exception("failed", extra={"extra_field": [CANARY]})
    text = buf.getvalue()
    assert CANARY not in text
    assert text.count("***") >= 5
    assert "ValueError: boom ***" in text


def test_filter_is_idempotent_and_never_drops_records() -> None:
    logger, buf = _logger_with_buffer("laptop_agents.test_mask2")
    install_masking_filter(logger)
    assert sum(isinstance(f, SecretMaskingFilter) for f in logger.filters) == 1
    logger.warning("plain %d", 5, extra={"extra_field": 1})
    assert "plain 5 1" in buf.getvalue()


def test_passphrase_from_systemd_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "la_passphrase").write_text("systemd-pass-123\n")
    src = PassphraseSource(env={"CREDENTIALS_DIRECTORY": str(tmp_path)}, docker_dir=tmp_path / "none")
    assert src.read().reveal() == "systemd-pass-123"


def test_passphrase_from_docker_secret(tmp_path: Path) -> None:
    (tmp_path / "custom").write_text("docker-pass-456")
    src = PassphraseSource(name="custom", env={}, docker_dir=tmp_path)
    assert src.read().reveal() == "docker-pass-456"


def test_passphrase_from_file_named_by_env(tmp_path: Path) -> None:
    f = tmp_path / "pp.txt"
    f.write_text("file-pass-789\n")
    src = PassphraseSource(env={"LA_PASSPHRASE_FILE": str(f)}, docker_dir=tmp_path / "none")
    assert src.read().reveal() == "file-pass-789"


def test_passphrase_value_in_env_is_refused_without_echoing_it(tmp_path: Path) -> None:
    src = PassphraseSource(env={"LA_PASSPHRASE": "inline-value-xyz"}, docker_dir=tmp_path)
    with pytest.raises(PassphraseUnavailableError) as err:
        src.read()
    assert "LA_PASSPHRASE" in str(err.value) and "inline-value-xyz" not in str(err.value)


def test_missing_passphrase_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(PassphraseUnavailableError) as err:
        PassphraseSource(env={}, docker_dir=tmp_path).read()
    assert "no passphrase found" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PassphraseUnavailableError, match="does not exist"):
        PassphraseSource(env={"LA_PASSPHRASE_FILE": str(tmp_path / "nope")}, docker_dir=tmp_path).read()


def test_short_passphrase_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "pp"
    f.write_text("short")
    with pytest.raises(PassphraseUnavailableError, match="shorter than"):
        PassphraseSource(explicit_file=f).read()
