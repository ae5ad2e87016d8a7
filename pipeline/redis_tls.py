"""TLS for the Celery broker.

redis-py reads TLS settings from the URL itself: ``rediss://[user:password@]host:port/db?ssl_ca_certs=/path/ca.pem``
(also ``ssl_certfile``, ``ssl_keyfile`` for client certificates, ``ssl_cert_reqs``), so the
state/stream connection (``redis.Redis.from_url``) needs nothing more. Celery's broker (kombu)
does not take them from the URL: it wants ``broker_use_ssl``, which ``celery_broker_ssl`` derives
from the same URL. Certificates are always verified unless the URL says otherwise explicitly.
"""
from __future__ import annotations

import ssl
import urllib.parse

from pipeline.config import Config

SSL_PARAMETERS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
CERT_REQS = {"required": ssl.CERT_REQUIRED, "cert_required": ssl.CERT_REQUIRED,
             "optional": ssl.CERT_OPTIONAL, "cert_optional": ssl.CERT_OPTIONAL,
             "none": ssl.CERT_NONE, "cert_none": ssl.CERT_NONE}


def broker_ssl_options(url: str) -> dict | None:
    """``broker_use_ssl`` for a broker URL: None unless it is ``rediss://``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "rediss":
        return None
    query = dict(urllib.parse.parse_qsl(parsed.query))
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in CERT_REQS:
        raise ValueError(f"ssl_cert_reqs={reqs!r} in the broker URL: use required, optional or none")
    options: dict = {"ssl_cert_reqs": CERT_REQS[reqs]}
    if CERT_REQS[reqs] != ssl.CERT_NONE:
        options["ssl_check_hostname"] = True  # the name must match, not only the chain verify
    for name in SSL_PARAMETERS:
        if query.get(name):
            options[name] = query[name]
    return options


def celery_broker_ssl(config: Config) -> dict | None:
    """The value for Celery's ``broker_use_ssl`` setting (None: no TLS)."""
    return broker_ssl_options(config.broker_url_value())
