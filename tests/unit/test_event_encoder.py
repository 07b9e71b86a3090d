"""The journal's fast JSON-line encoder writes exactly what json.dumps(event.to_record()) wrote."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise

from laptop_agents.core.errors import ExitCode
from laptop_agents.core.events import Event, EventEncoder, EventName
from laptop_agents.core.models import Side

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def reference(event: Event) -> str:
    return _dumps(event.to_record()) + "\n"


def same(enc: EventEncoder, event: Event) -> bool:
    """Same line, or the same exception type (e.g. a Decimal nested in a dict was never serializable)."""
    try:
        want: object = reference(event)
    except Exception as exc:  # noqa: BLE001
        want = type(exc)
    try:
        got: object = enc.line(event)
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    return got == want


VALUES = [
    Decimal("95018.6"), Decimal("0.0179"), Decimal("-11.82321772"), Decimal("1E+3"), Decimal("0E-8"), Decimal("-0"),
    Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("1e400"), Decimal(123456789012345678901234),
    "plain", "quote \" backslash \\ newline \n tab \t nul \x00", "ünïcödé ✓ 😀", "", "\u2028",
    T0, T0 + timedelta(milliseconds=1, microseconds=999), datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
    1.5, 0.1 + 0.2, 1e-7, 1e22, float("nan"), float("inf"), -float("inf"), -0.0,
    0, -7, 10**30, True, False, None,
    Side.LONG, Side.SHORT, ExitCode.OK, ExitCode.CIRCUIT_BREAKER,
    {"a": 1.5, "b": [1, "x", None]}, {"bad": Decimal(1)}, [1, 2.5, "three"], (1, 2),
]


def test_every_value_type_encodes_like_json_dumps() -> None:
    enc = EventEncoder()
    for v in VALUES:
        for name in (EventName.CANDLE_PROCESSED, "Ünusual \"name\""):
            e = Event(name, T0, value=v, **{"ключ": v, "k\"q": v})
            assert same(enc, e), repr(v)


def test_key_named_event_and_timestamps_shared_across_events() -> None:
    enc = EventEncoder()
    e = Event("X", T0, event="override", timestamp_like=T0)
    assert same(enc, e)
    rng = random.Random(7)
    stamps = [T0 + timedelta(minutes=rng.randrange(5)) for _ in range(200)]
    for a, b in pairwise(stamps):
        e = Event(EventName.SIGNAL_GENERATED, a, candle_ts=b, price=Decimal(rng.randrange(10**6)) / 10, reason="r")
        assert same(enc, e)


def test_random_records() -> None:
    enc = EventEncoder()
    rng = random.Random(42)
    for _ in range(2000):
        data = {f"f{i}": rng.choice(VALUES) for i in range(rng.randrange(0, 9))}
        ts = T0 + timedelta(seconds=rng.randrange(0, 4) * 60)
        e = Event(rng.choice([EventName.CANDLE_PROCESSED, EventName.EXECUTION_EXIT, "Other"]), ts, **data)
        assert same(enc, e)


def test_decimal_text_matches_float_repr() -> None:
    from laptop_agents.core.events import _decimal_json, _json_float

    rng = random.Random(1)
    cases = [Decimal(x) for x in ("0.0", "-0.0", "0.00", "1.0", "10.0", "100.00", "0.01", "0.001", "0.0001", "0.00001",
                                  "95094.50", "95094.5", "123456789012345", "12345678901234.5", "1234567890123.45",
                                  "999999999999999.9", "1E+2", "1.5E+2", "1e-7", "-0.0179", "0.1", "0.3")]
    for _ in range(200_000):
        digits = str(rng.randrange(10 ** rng.randrange(1, 19)))
        exp = rng.randrange(-20, 6)
        sign = "-" if rng.random() < 0.3 else ""
        cases.append(Decimal(f"{sign}{digits}E{exp}"))
        cases.append(Decimal(rng.randrange(10**7)) / Decimal(10) ** rng.randrange(0, 9))
    for d in cases:
        assert _decimal_json(d) == _json_float(float(d)), d
    enc = EventEncoder()  # line() uses the same rule
    for d in cases[::7]:
        e = Event("X", T0, v=d)
        assert enc.line(e) == reference(e), d


def test_candle_processed_fast_path() -> None:
    enc = EventEncoder()
    rng = random.Random(3)
    for i in range(3000):
        ts = T0 + timedelta(minutes=i)
        vals = [rng.choice(VALUES[:11]) if rng.random() < 0.1 else Decimal(rng.randrange(10**7)) / 10 for _ in range(5)]
        if rng.random() < 0.05:
            vals[rng.randrange(5)] = 1.5
        symbol = rng.choice(["BTCUSDT", "ÉTH\"USD"])
        cts = ts - timedelta(minutes=1) if rng.random() < 0.9 else ts.astimezone(timezone(timedelta(hours=-3)))
        e = Event(EventName.CANDLE_PROCESSED, ts, symbol=symbol, candle_ts=cts, open=vals[0], high=vals[1],
                  low=vals[2], close=vals[3], volume=vals[4])
        assert enc.line(e) == reference(e)
    e = Event(EventName.CANDLE_PROCESSED, T0, candle_ts=T0, symbol="X", open=1, high=2, low=3, close=4, volume=5)
    assert enc.line(e) == reference(e)  # other key order: the general path
