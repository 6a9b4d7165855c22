"""A real SMTP server on 127.0.0.1 that keeps what it receives, so tests read the mail a recipient got."""

from __future__ import annotations

import email
import logging
import socket
import threading


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        # The mail server is the recipient's side, not our app: its debug log echoes whole messages.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink._lock:
                    sink.messages.append(
                        {"to": list(envelope.rcpt_tos), "data": envelope.content.decode("utf8", "replace")}
                    )
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0: pick a free port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def texts(self) -> list[str]:
        """Each message decoded (quoted-printable / base64 parts expanded)."""
        texts = []
        with self._lock:
            raw = list(self.messages)
        for message in raw:
            parsed = email.message_from_string(message["data"])
            parts = [part.get_payload(decode=True) or b"" for part in parsed.walk() if not part.is_multipart()]
            texts.append("\n".join(p.decode("utf8", "replace") for p in parts))
        return texts

    def stop(self) -> None:
        self.controller.stop()
