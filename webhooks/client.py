"""One HTTP POST to a checked Target, connected to the checked IP address (no second DNS lookup).

urllib3 is given the IP as the host; the Host header, TLS SNI and certificate check use the URL's
host name. Short timeouts (connect WEBHOOKS_CONNECT_TIMEOUT, whole exchange WEBHOOKS_TOTAL_TIMEOUT),
redirects are not followed (a 3xx is a failed delivery: following it would skip the guard), and at
most RESPONSE_LIMIT bytes of the answer are read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3
from django.conf import settings

from webhooks.guard import Target

RESPONSE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str
    duration_ms: int


def post(target: Target, body: bytes, headers: dict[str, str]) -> Answer:
    connect = float(settings.WEBHOOKS_CONNECT_TIMEOUT)
    total = float(settings.WEBHOOKS_TOTAL_TIMEOUT)
    started = time.monotonic()
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header += f":{target.port}"
    timeout = urllib3.Timeout(connect=connect, read=total, total=total)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1
        )
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            read = 0
            for chunk in response.stream(8192):
                read += len(chunk)
                # The total budget holds even for a target that trickles its answer byte by byte.
                if read >= RESPONSE_LIMIT or time.monotonic() - started > total:
                    break
        finally:
            response.release_conn()
        status = int(response.status)
        error = "" if 200 <= status < 300 else f"The receiver answered HTTP {status}."
        return Answer(status, error, _ms(started))
    except urllib3.exceptions.HTTPError as exc:
        return Answer(None, _describe(exc, connect, total), _ms(started))
    except OSError as exc:
        return Answer(None, f"Connection failed ({type(exc).__name__}).", _ms(started))
    finally:
        pool.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: Exception, connect: float, total: float) -> str:
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return f"No connection within {connect:g} s."
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return f"No answer within {total:g} s."
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS failed (certificate or handshake)."
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "Connection refused or unreachable."
    return f"HTTP error ({type(exc).__name__})."
