"""A local SMTP server for the benchmarks, in its own process (as a real server would be).

    python bench/smtp_sink.py PORT ARRIVALS_FILE

Accepts every message and appends ``<Message-ID>\\t<time.time()>`` per message to
ARRIVALS_FILE (flushed each time), until killed.
"""

from __future__ import annotations

import sys
import threading
import time

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message_id = "-"
        for line in envelope.content.split(b"\r\n"):
            if not line:
                break
            if line[:11].lower() == b"message-id:":
                message_id = line[11:].strip().decode()
                break
        self.file.write(f"{message_id}\t{time.time()}\n")
        return "250 OK"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Recorder(path), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
