"""Provider outages (aitestbed.hub.provider_outage): the grace, the retry pace, one warning."""

from __future__ import annotations

import logging

from aitestbed.hub.provider_outage import ProviderOutage, provider_unreachable
from tornado.httpclient import HTTPClientError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unreachable_means_no_answer_not_a_refusal():
    assert provider_unreachable(ConnectionRefusedError(111, "refused"))
    assert provider_unreachable(HTTPClientError(599, "Timeout"))
    assert provider_unreachable(HTTPClientError(503))
    assert not provider_unreachable(HTTPClientError(401))
    assert not provider_unreachable(ValueError("bad json"))


def test_sessions_are_kept_for_the_grace_with_one_warning(caplog):
    clock = Clock()
    outage = ProviderOutage(30, retry=5, clock=clock, logger=logging.getLogger("t"))
    assert (outage.ongoing, outage.should_ask_provider(), outage.keep_session()) == (
        False,
        True,
        True,
    )
    with caplog.at_level(logging.INFO, logger="t"):
        outage.failed(ConnectionRefusedError(111, "refused"))
        clock.now += 1
        assert not outage.should_ask_provider()  # at most once every 5 s
        clock.now += 4
        assert outage.should_ask_provider()
        outage.failed(ConnectionRefusedError(111, "refused"))
        clock.now = 100 + 29.9
        assert outage.keep_session()
        clock.now = 100 + 30
        assert not outage.keep_session()
        outage.answered()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "cannot be reached" in m]) == 1
    assert messages[-1] == "The sign-in service answers again after 30 s."
    assert (outage.ongoing, outage.keep_session()) == (False, True)
