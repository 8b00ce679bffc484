"""Reaching the key authority: an HTTPS service with mutual TLS on one side, a client stub on the other.

The key authority (``qsafe-flower-key-authority``) listens with a server certificate and requires a client
certificate signed by the CA it is given: only the aggregator (holding such a certificate) can ask it anything.
One POST per request (``/v1/ka``), body = :func:`~qsafe_flower.authority.encode_request`; a refusal comes back as
HTTP 409 with ``{"error", "message", "exit_code"}`` and is raised again on the aggregator's side with its class.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from qsafe import errors
from qsafe.errors import QsafeError, UnavailableError
from qsafe_flower.authority import KeyAuthority, encode_request

__all__ = ["KeyAuthorityServer", "RemoteKeyAuthority"]

MAX_REQUEST = 8 << 30


class KeyAuthorityServer:
    """Serve a :class:`KeyAuthority` over HTTPS with mutual TLS (one request at a time).

    Args:
        authority: the key authority.
        host, port: where to listen (port 0: any free port; read :attr:`port`).
        certfile, keyfile: the server's TLS certificate and key.
        client_ca: the CA whose client certificates are accepted (mutual TLS).
    """

    def __init__(self, authority: KeyAuthority, host: str, port: int, *, certfile: str, keyfile: str,
                 client_ca: str) -> None:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
        ssl_ctx.verify_mode = ssl.CERT_REQUIRED
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ssl_ctx.load_cert_chain(certfile, keyfile)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet: the caller logs what matters
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "-1"))
                if self.path != "/v1/ka" or not 0 < length <= MAX_REQUEST:
                    self._reply(400, "application/json", b'{"error": "FormatError", "message": "bad request"}')
                    return
                body = self.rfile.read(length)
                try:
                    with lock:
                        kind, out = authority.handle(body)
                except QsafeError as exc:
                    payload = {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
                    self._reply(409, "application/json", json.dumps(payload).encode())
                    return
                self._reply(200, kind, out)

            def _reply(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.socket = ssl_ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown`."""
        self._server.serve_forever()

    def start(self) -> KeyAuthorityServer:
        """Serve in a background thread (tests, simulations)."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()


class RemoteKeyAuthority:
    """The aggregator's handle on a key authority served by :class:`KeyAuthorityServer`.

    Args:
        address: ``host:port``.
        ca: the CA that signed the key authority's certificate.
        certfile, keyfile: the aggregator's client certificate and key.
        timeout: seconds per request.
    """

    def __init__(self, address: str, *, ca: str, certfile: str, keyfile: str, timeout: float = 600.0) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self._ssl = ssl.create_default_context(cafile=ca)
        self._ssl.minimum_version = ssl.TLSVersion.TLSv1_3
        self._ssl.load_cert_chain(certfile, keyfile)

    def _call(self, op: str, round: int, blobs: Sequence[bytes], params: dict[str, Any] | None = None) -> bytes:
        body = encode_request(op, round, blobs, params)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self._ssl, timeout=self.timeout)
        try:
            conn.request("POST", "/v1/ka", body=body, headers={"Content-Type": "application/octet-stream"})
            response = conn.getresponse()
            data = response.read()
        except OSError as exc:
            raise UnavailableError(f"the key authority at {self.host}:{self.port} cannot be reached: {exc}") from exc
        finally:
            conn.close()
        if response.status == 409:
            info = json.loads(data)
            cls = getattr(errors, str(info.get("error")), None)
            if not (isinstance(cls, type) and issubclass(cls, QsafeError)):
                cls = errors.HEMismatchError
            raise cls(f"key authority refused: {info.get('message')}")
        if response.status != 200:
            raise UnavailableError(f"the key authority answered HTTP {response.status}")
        return data

    def decrypt_mean(self, aggregate: bytes, updates: Sequence[bytes], round: int, run: str = "") -> dict[str, np.ndarray]:
        """See :meth:`KeyAuthority.decrypt_mean`."""
        from safetensors.numpy import load

        return dict(load(self._call("decrypt-mean", round, [aggregate, *updates], {"run": run})))

    def norms(self, updates: Sequence[bytes], round: int) -> list[float]:
        """See :meth:`KeyAuthority.norms`."""
        return [float(v) for v in json.loads(self._call("norms", round, updates))["norms"]]

    def krum(self, updates: Sequence[bytes], round: int, f: int, m: int | None) -> tuple[list[int], list[float]]:
        """See :meth:`KeyAuthority.krum`."""
        out = json.loads(self._call("krum", round, updates, {"f": f, "m": m}))
        return [int(i) for i in out["chosen"]], [float(s) for s in out["scores"]]
