"""A real SMTP server on loopback for the tests (aiosmtpd): every message it is given is
written to OUT_DIR as NNNN.eml, with the envelope's recipients in NNNN.rcpt. Prints
`listening PORT` once it accepts connections, and runs until killed.

    smtp_sink.py OUT_DIR [starttls|tls CERT KEY]

With `starttls` it offers STARTTLS and refuses mail before it; with `tls` it speaks TLS from
the first byte (implicit TLS, as on port 465)."""

import asyncio
import pathlib
import socket
import ssl
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        stem = self.out / f"{self.n:04d}"
        (stem.with_suffix(".rcpt")).write_text("\n".join(envelope.rcpt_tos))
        tmp = stem.with_suffix(".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(stem.with_suffix(".eml"))
        return "250 Message accepted for delivery"


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = {}
    if len(sys.argv) == 5:
        mode, cert, key = sys.argv[2:5]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if mode == "starttls":
            options = {"tls_context": context, "require_starttls": True}
        else:
            options = {"ssl_context": context}
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port, server_hostname="localhost", **options)
    controller.start()
    print(f"listening {port}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
