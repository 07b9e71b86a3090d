"""Credentials never render their secret; the API key shows only a fingerprint."""

from __future__ import annotations

import logging
import pickle

import pytest

from laptop_agents.core.secrets_mask import fingerprint, redact
from laptop_agents.security.credentials import Credentials

KEY = "ak_live_0123456789abcdef"
SECRET = "sk_live_fedcba9876543210"


def test_repr_str_format_hide_secret_and_mask_key() -> None:
    creds = Credentials(KEY, SECRET)
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}", "%s" % (creds,), repr([creds])):  # noqa: UP031 - %-formatting is a case
        assert SECRET not in text
        assert KEY not in text
        assert "***cdef" in text


def test_logging_a_credentials_object_does_not_leak(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("using %s", Credentials(KEY, SECRET))
    assert SECRET not in caplog.text and KEY not in caplog.text


def test_credentials_refuse_pickling() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Credentials(KEY, SECRET))


def test_empty_values_are_rejected() -> None:
    with pytest.raises(ValueError):
        Credentials("", SECRET)
    with pytest.raises(ValueError):
        Credentials(KEY, "  ")


def test_fingerprint_never_shows_more_than_a_quarter() -> None:
    assert fingerprint("abcdefghijklmnop") == "***mnop"
    assert fingerprint("abcdefg") == "***g"
    assert fingerprint("abc") == "***"


def test_redact_replaces_every_secret_occurrence() -> None:
    text = f"key={KEY} sig of {SECRET} again {SECRET}"
    out = redact(text, [KEY, SECRET, None, "ab"])
    assert KEY not in out and SECRET not in out
    assert out == "key=*** sig of *** again ***"
