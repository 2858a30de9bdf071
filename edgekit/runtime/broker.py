"""Where and how a device reaches its MQTT broker: parsed from ``--mqtt URL`` and the TLS/credential options."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from edgekit.errors import ConfigError

PROTOCOLS = ("auto", "5", "3.1.1")
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how to connect: host, port, TLS files, credentials, MQTT version, keepalive and backoff.

    >>> config = BrokerConfig.from_url("mqtts://dev:secret@broker.local")
    >>> config.address, config.tls, config.username, "secret" in repr(config)
    ('broker.local:8883', True, 'dev', False)
    >>> BrokerConfig.from_url("http://broker.local")
    Traceback (most recent call last):
    ...
    edgekit.errors.ConfigError: broker URL 'http://broker.local' must start with mqtt:// or mqtts://
    """

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: str = "auto"
    keepalive: int = 30
    max_reconnect_delay: int = 30

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError("the MQTT broker host is empty; pass a URL like mqtt://broker.local:1883")
        for name, low, high in (("port", 1, 65535), ("keepalive", 1, 65535), ("max_reconnect_delay", 1, 3600)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"MQTT {name} must be an integer from {low} to {high}, got {value!r}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"MQTT protocol {self.protocol!r} is not one of: {', '.join(PROTOCOLS)}")
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            raise ConfigError("a CA file or client certificate needs TLS; use an mqtts:// broker URL")
        if self.key_file and not self.cert_file:
            raise ConfigError("a client key without a client certificate; pass --mqtt-cert too")
        if self.password is not None and self.username is None:
            raise ConfigError("an MQTT password without a user name; pass --mqtt-username too")
        for what, path in (("CA file", self.ca_file), ("client certificate", self.cert_file),
                           ("client key", self.key_file)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"MQTT {what} {path} not found")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, *, username: str | None = None, password: str | None = None,
                 **options: Any) -> BrokerConfig:
        """Parse ``mqtt://[user:pass@]host[:port]`` (port 1883) or ``mqtts://...`` (port 8883); ``options`` are
        the other fields (``ca_file``, ``keepalive``, ...), with the dataclass's defaults.

        A user name or password given as an argument overrides the one in the URL.
        """
        parts = urlsplit(url)
        shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ConfigError(f"broker URL {shown!r} must start with mqtt:// or mqtts://")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"broker URL {shown!r}: the port must be a number from 1 to 65535") from None
        if not parts.hostname:
            raise ConfigError(f"broker URL {shown!r} names no host; use mqtt://host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"broker URL {shown!r}: only mqtt[s]://[user:password@]host[:port] is understood")
        if username is None and parts.username:
            username = unquote(parts.username)
        if password is None and parts.password is not None:
            password = unquote(parts.password)
        return cls(host=parts.hostname, port=DEFAULT_PORTS[scheme] if port is None else port, tls=scheme == "mqtts",
                   username=username, password=password, **options)

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying TLS context with the CA file (or the system's CAs) and the client certificate, if any."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"cannot load the MQTT CA file {self.ca_file} ({exc}); pass the PEM certificate of "
                              "the CA that signed the broker's certificate (--mqtt-ca)") from exc
        if self.cert_file:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(f"cannot load the MQTT client certificate {self.cert_file} / key {self.key_file} "
                                  f"({exc}); pass a PEM certificate and its unencrypted key "
                                  "(--mqtt-cert, --mqtt-key)") from exc
        return context
