#!/usr/bin/python3
"""A real SMTP server on loopback for the outbox tests and bench (aiosmtpd,
Debian's python3-aiosmtpd: run it with /usr/bin/python3).

    smtp_server.py --dir DIR [--port N] [--slow SECONDS] [--discard] [--hang-up]

Listens on 127.0.0.1 (port 0: one the kernel picks) and prints `PORT <n>`
on standard output once it accepts connections. Every accepted message is
written as DIR/<n>.eml (n counts on from the files already there, so a
restart on the same folder keeps them), with DIR/<n>.json holding the
envelope (mail_from, rcpt_tos); the .eml appears last and whole. With
--discard nothing is written (for benchmarks), only counted. With --hang-up
the server says `421` and closes the connection 0.1 s after each accepted
message, as a server does at its idle timeout (a client's pooled connection
is then dead).

What it answers depends on the recipient's local part:
  tempfail-N-...@  451 4.3.0 try again later, to the first N attempts for
                   that address (counted while this process runs), then
                   accepts;
  bounce...@       550 5.1.1 mailbox unavailable;
  slow-...@        accepted, but DATA takes --slow seconds (default 3), so a
                   sender can be stopped mid-send;
  anything else    accepted.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import sys

from aiosmtpd.smtp import SMTP

TEMPFAIL = re.compile(r"^tempfail-(\d+)-", re.IGNORECASE)


class Handler:
    def __init__(self, folder, slow, discard, hang_up=False):
        self.hang_up = hang_up
        self.folder = folder
        self.slow = slow
        self.discard = discard
        self.tempfails = {}
        self.count = 0
        if folder:
            numbers = [
                int(name.split(".")[0])
                for name in os.listdir(folder)
                if name.endswith(".eml") and name.split(".")[0].isdigit()
            ]
            self.count = max(numbers, default=0)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        m = TEMPFAIL.match(local)
        if m:
            key = address.lower()
            seen = self.tempfails.get(key, 0)
            if seen < int(m.group(1)):
                self.tempfails[key] = seen + 1
                return "451 4.3.0 try again later"
        if local.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.split("@", 1)[0].lower().startswith("slow-") for r in envelope.rcpt_tos):
            await asyncio.sleep(self.slow)
        self.count += 1
        n = self.count
        if not self.discard:
            base = os.path.join(self.folder, f"{n:06d}")
            with open(base + ".json", "w") as f:
                json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
            with open(base + ".eml.part", "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(base + ".eml.part", base + ".eml")
        if self.hang_up:
            transport = server.transport

            def hang_up():
                if not transport.is_closing():
                    transport.write(b"421 4.4.2 varsel-test-smtp closing the connection\r\n")
                    transport.close()

            asyncio.get_running_loop().call_later(0.1, hang_up)
        return f"250 2.0.0 Ok: queued as {n}"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slow", type=float, default=3.0)
    parser.add_argument("--discard", action="store_true")
    parser.add_argument("--hang-up", action="store_true")
    args = parser.parse_args()
    if not args.discard and not args.dir:
        parser.error("--dir is needed unless --discard")
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    handler = Handler(args.dir, args.slow, args.discard, args.hang_up)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="varsel-test-smtp", data_size_limit=64 * 1024 * 1024),
        host="127.0.0.1",
        port=args.port,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    print(f"ACCEPTED {handler.count}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
