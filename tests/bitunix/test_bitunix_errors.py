"""Exchange codes map to typed exceptions; retryability is a class property."""

from __future__ import annotations

import pickle

import pytest

from laptop_agents.bitunix.errors import (
    AuthError,
    BitunixError,
    DuplicateClientIdError,
    ExchangeNetworkError,
    ExchangeUnavailableError,
    InsufficientBalanceError,
    InvalidRequestError,
    MalformedMessage,
    OrderNotFoundError,
    OrderRejectedError,
    PositionNotFoundError,
    RateLimitError,
    TransportError,
    error_from_code,
)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10001, ExchangeNetworkError),
        (10002, InvalidRequestError),
        (10003, AuthError),
        (10004, AuthError),
        (10005, RateLimitError),
        (10006, RateLimitError),
        (10007, AuthError),
        (10008, InvalidRequestError),
        (20001, InvalidRequestError),
        (20002, OrderRejectedError),
        (20003, InsufficientBalanceError),
        (20005, InvalidRequestError),
        (20006, InvalidRequestError),
        (20007, OrderNotFoundError),
        (20008, OrderRejectedError),
        (20011, OrderRejectedError),
        (20012, OrderRejectedError),
        (30001, OrderRejectedError),
        (30004, PositionNotFoundError),
        (30013, OrderRejectedError),
        (30016, OrderRejectedError),
        (30018, OrderRejectedError),
        (30025, OrderRejectedError),
        (30038, OrderRejectedError),
        (30039, OrderRejectedError),
        (30041, OrderRejectedError),
        (30042, DuplicateClientIdError),
        (39999, OrderRejectedError),  # unknown trade code: still a rejection
        (99999, BitunixError),  # unknown: base class, not retryable
    ],
)
def test_code_mapping(code: int, cls: type[BitunixError]) -> None:
    err = error_from_code(code, "some message", context="POST /x")
    assert type(err) is cls
    assert err.code == code
    assert "some message" in str(err) and str(code) in str(err) and "POST /x" in str(err)


def test_retryability_is_a_class_property() -> None:
    assert TransportError.retryable and RateLimitError.retryable and ExchangeNetworkError.retryable
    for cls in (
        BitunixError,
        AuthError,
        InsufficientBalanceError,
        OrderRejectedError,
        DuplicateClientIdError,
        OrderNotFoundError,
        InvalidRequestError,
        MalformedMessage,
        ExchangeUnavailableError,
    ):
        assert not cls.retryable, cls


def test_only_transport_failures_count_against_the_api_breaker() -> None:
    assert TransportError.counts_as_api_failure
    assert ExchangeNetworkError.counts_as_api_failure
    assert not RateLimitError.counts_as_api_failure
    assert not OrderRejectedError.counts_as_api_failure


def test_rate_limit_refusals_are_known_not_delivered() -> None:
    assert error_from_code(10006).maybe_delivered is False
    assert TransportError("x").maybe_delivered is True
    assert TransportError("x", maybe_delivered=False).maybe_delivered is False


def test_errors_survive_pickling_with_their_attributes() -> None:
    err = error_from_code(20003, "no money", context="POST /trade/place_order")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is InsufficientBalanceError
    assert (clone.code, clone.msg, clone.context) == (20003, "no money", "POST /trade/place_order")


def test_malformed_message_names_kind_field_and_excerpt() -> None:
    err = MalformedMessage("missing required field", kind="ws.kline", field="ts", excerpt="{...}")
    assert str(err) == "malformed ws.kline.ts: missing required field in {...}"
