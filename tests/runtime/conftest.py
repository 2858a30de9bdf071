"""Fixtures for the runtime tests: real mosquitto brokers, test certificates and test subscribers."""

from __future__ import annotations

import pytest
from broker import Mosquitto, Subscriber, make_certificates


@pytest.fixture
def mosquitto(tmp_path):
    """A factory: ``mosquitto(**options)`` starts a broker (see broker.Mosquitto); all are stopped afterwards."""
    brokers: list[Mosquitto] = []

    def start(**options) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"broker{len(brokers)}", **options)
        brokers.append(broker)
        return broker.start()

    yield start
    for broker in brokers:
        broker.stop()


@pytest.fixture
def subscriber():
    """A factory: ``subscriber(port, topic_filter)`` starts a persistent QoS 1 subscriber; stopped afterwards."""
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed: pip install 'edgekit[runtime]'")
    subscribers: list[Subscriber] = []

    def start(port: int, topic_filter: str = "edgekit/#", **options) -> Subscriber:
        sub = Subscriber(port, topic_filter, **options)
        subscribers.append(sub)
        return sub.start()

    yield start
    for sub in subscribers:
        sub.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A test CA with server and client certificates, and an unrelated CA (made once per session)."""
    return make_certificates(tmp_path_factory.mktemp("certs"))
