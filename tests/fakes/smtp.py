#!/usr/bin/env python3
"""tests/fakes/smtp.py PORT DIR: a fake SMTP server on 127.0.0.1 for the
job runner's mail tests. It speaks just enough SMTP for libcurl (EHLO/HELO,
MAIL, RCPT, DATA, RSET, NOOP, QUIT) and writes every message it accepts to
DIR/<n>.eml, with the envelope in DIR/<n>.env. A file DIR/refuse makes it
answer 451 to DATA, as a server in trouble would."""
import os
import socketserver
import sys
import threading

PORT, DIR = int(sys.argv[1]), sys.argv[2]
os.makedirs(DIR, exist_ok=True)
lock = threading.Lock()
count = [0]


class Session(socketserver.StreamRequestHandler):
    def say(self, line):
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self):
        self.say("220 fake.smtp ESMTP ready")
        sender, rcpts = None, []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode("utf-8", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-fake.smtp\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                self.wfile.flush()
            elif verb == "HELO":
                self.say("250 fake.smtp")
            elif verb == "MAIL":
                sender, rcpts = cmd[10:].strip(), []
                self.say("250 ok")
            elif verb == "RCPT":
                rcpts.append(cmd[8:].strip())
                self.say("250 ok")
            elif verb == "DATA":
                if os.path.exists(os.path.join(DIR, "refuse")):
                    self.say("451 try again later")
                    continue
                self.say("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    lines.append(l[1:] if l.startswith(b"..") else l)
                with lock:
                    count[0] += 1
                    n = count[0]
                base = os.path.join(DIR, str(n))
                with open(base + ".tmp", "wb") as f:
                    f.write(b"".join(lines))
                with open(base + ".env", "w") as f:
                    f.write("from %s\nto %s\n" % (sender, " ".join(rcpts)))
                os.rename(base + ".tmp", base + ".eml")
                self.say("250 queued as %d" % n)
            elif verb in ("RSET", "NOOP"):
                self.say("250 ok")
            elif verb == "QUIT":
                self.say("221 bye")
                return
            else:
                self.say("502 not implemented")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with Server(("127.0.0.1", PORT), Session) as srv:
    srv.serve_forever()
