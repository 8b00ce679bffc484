"""``qsafe-flower-key-authority``: run the key authority as its own process (the only holder of secret.ctx).

    qsafe-flower-key-authority --secret ka/secret.ctx --clients clients/ --listen 127.0.0.1:9300 \\
        --certfile ka.pem --keyfile ka.key --client-ca ca.pem [--min-clients 2] \\
        [--noise-multiplier S --clip-norm C] [--passphrase-file F] [--ready-file F]

The passphrase of a protected secret.ctx comes from ``--passphrase-file`` or ``$QSAFE_PASSPHRASE`` (never argv).
Errors print ``qsafe: error: …`` and exit with qsafe's exit codes; SIGTERM/SIGINT stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from qsafe.errors import QsafeError, UsageError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qsafe-flower-key-authority", description=__doc__.split("\n\n")[0])
    p.add_argument("--secret", required=True, type=Path, help="the secret HE context (secret.ctx)")
    p.add_argument("--clients", required=True, type=Path, help="allowed client public keys (PEM file or directory)")
    p.add_argument("--listen", default="127.0.0.1:9300", help="host:port (port 0: any free port)")
    p.add_argument("--certfile", required=True, help="this server's TLS certificate (PEM)")
    p.add_argument("--keyfile", required=True, help="this server's TLS key (PEM)")
    p.add_argument("--client-ca", required=True, help="CA of the client certificates accepted (mutual TLS)")
    p.add_argument("--min-clients", type=int, default=2, help="fewest updates an aggregate must hold (default 2)")
    p.add_argument("--noise-multiplier", type=float, default=0.0, help="DP: sigma of the noise added to the mean")
    p.add_argument("--clip-norm", type=float, default=None, help="DP: the L2 bound the clients clip to")
    p.add_argument("--passphrase-file", type=Path, help="passphrase of a protected secret.ctx (first line)")
    p.add_argument("--ready-file", type=Path, help="write host:port here once listening (for scripts)")
    return p


def _passphrase(args: argparse.Namespace) -> bytes | None:
    from qsafe.federated import is_protected

    if not is_protected(args.secret.read_bytes()[:64]):
        return None
    if args.passphrase_file is not None:
        return bytes(args.passphrase_file.read_text().splitlines()[0].encode())
    if "QSAFE_PASSPHRASE" in os.environ:
        return os.environ["QSAFE_PASSPHRASE"].encode()
    raise UsageError(f"{args.secret} is protected: give --passphrase-file or set QSAFE_PASSPHRASE")


def main(argv: list[str] | None = None) -> int:
    """Run the key authority until SIGTERM/SIGINT."""
    args = _parser().parse_args(argv)
    try:
        from qsafe import keys
        from qsafe.federated import HEContext
        from qsafe_flower.authority import KeyAuthority
        from qsafe_flower.transport import KeyAuthorityServer

        secret = HEContext.load(args.secret, _passphrase(args))
        authority = KeyAuthority(secret, keys.load_public_keys(args.clients), min_clients=args.min_clients,
                                 noise_multiplier=args.noise_multiplier, clip_norm=args.clip_norm)
        host, _, port = args.listen.rpartition(":")
        server = KeyAuthorityServer(authority, host, int(port), certfile=args.certfile, keyfile=args.keyfile,
                                    client_ca=args.client_ca)
    except QsafeError as exc:  # its message is terminal-safe, one escaped line per line the library made
        for line in str(exc).split("\n"):
            print(f"qsafe: error: {line}", file=sys.stderr)
        if exc.hint:
            print(f"qsafe: hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        from qsafe._text import printable

        print(f"qsafe: error: {printable(exc)}", file=sys.stderr)
        return 3

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    address = f"{host}:{server.port}"
    if args.ready_file is not None:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(address)
        tmp.replace(args.ready_file)
    print(f"qsafe key authority listening on {address} (context {secret.fingerprint})", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
