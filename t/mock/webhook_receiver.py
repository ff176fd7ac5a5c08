#!/usr/bin/env python3
"""Webhook receiver for the tests of ngx_http_callhq_module.

Standard library only (runs under Debian's /usr/bin/python3).

Usage
-----
    python3 t/mock/webhook_receiver.py --port 0 [--host 127.0.0.1]
        [--tls-cert cert.pem --tls-key key.pem] [--log FILE]
        [--secret whsec_...] [--dns-port PORT] [--pg CONNINFO]

Once listening it prints one line to stdout and flushes it:

    webhook receiver listening on 127.0.0.1:PORT

It runs until SIGTERM or SIGINT.  Each connection gets its own thread.

Webhooks: a POST to any path that does not start with "/_"
---------------------------------------------------------------
Every request is verified the Standard Webhooks way: webhook-id,
webhook-timestamp (within 5 minutes of now) and webhook-signature
"v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed by the secret
("whsec_" + base64 is decoded; any other secret is used as raw bytes).
It is recorded (and appended to --log as one JSON line) with
    n, time, path, query, headers (lower-case names), body, id,
    attempt (of this webhook-id, from 1), valid (true, false, or null
    when there is no signature, or no secret to check it), answer (the
    status sent, or "closed", "hang", "down").
The URL's query string picks the answer (counts are per webhook-id unless
said otherwise):
    fail=N        the first N attempts get `status` (default 500)
    fail_first=N  the first N requests to this path get 500, whatever the id
    status=NNN    the status for fail
    close=N       the first N attempts: connection closed, no answer
    hang=N        the first N attempts: no answer, the connection is held
                  until the client gives up (at most 120 s)
    delay=MS      answer after MS milliseconds
    secret=S      verify with S instead of --secret
otherwise 200 {"ok":true}.  A connection that ends before a request line
(a client that gave up after the TLS handshake) is recorded with path "-".

Twilio's REST API: POST /2010-04-01/Accounts/<SID>/Messages.json
-----------------------------------------------------------------
A text sent (ngx_http_callhq_webhook_delivery.c): the form's From, To
and Body, and the HTTP Basic credentials, are recorded as the message
{"type": "twilio.sms", "From", "To", "Body", "auth": "<user>:<password>"}
(fields= prints them), with valid true when the Basic user is the SID of
the path, and the id "<To> <Body>" (a text sent twice shows as a
duplicate).  Answers 201 with a Message resource, or an error (503 unless
said otherwise) while refusals are owed (/_control?refuse=N: the next N
texts).

Control (GET)
-------------
/_control?down=1   every webhook from now on: connection closed, no answer
/_control?down=0   back to normal          /_control?reset=1  forget all
/_control?refuse=N[&refuse_status=S]  the next N texts to the Twilio API
                   answer S (503)
/_log?path=P       the records of path P as JSON lines
/_wait?path=P&until=N[&timeout=S][&settle=S][&count=any][&fields=..]
                   [&headers=..][&min_gaps=ms,ms,..][&summary=1]
    waits (at most `timeout` seconds, default 20) until path P has N
    answered-2xx requests (with count=any: N requests of any kind), then
    `settle` seconds more (default 0), and answers text/plain, one line
    per request to P in arrival order:
        <type> <answer> <alias> <valid|invalid|unsigned>[ field=value]...
    <alias> stands for the webhook-id: "A" for the first id seen, "B"...
    fields=session.name,assistant.server.secret,session.messages#
        dotted paths into the body's "message" (numbers index arrays);
        "#" gives an array's length; an absent value prints as "-"; others
        as compact JSON; "@sni" is the TLS server name the client sent.
    headers=x-tenant   request headers, printed like fields ("-": absent).
    min_gaps=100,200   a last line "gaps ok", or one line per gap between
        consecutive attempts of an id that is shorter than listed (the k-th
        gap against the k-th number, in ms).
    summary=1  one line instead: "requests=R ids=I duplicates=D
        valid=V", duplicates counting the 2xx answers beyond the first
        of each id.
    A wait that times out ends with the line "timed out: M of N".
/_pgwait?sql=Q&want=W[&timeout=S]  (needs --pg)
    runs the query Q with psql every 0.1 s until its output is W (at most
    `timeout` seconds, default 20), and answers the last output plus a
    newline: a block can wait for the database instead of sleeping.
/_count?path=P     how many requests P got

DNS (--dns-port)
----------------
A UDP DNS server on the same host for nginx's resolver: every A query is
answered 127.0.0.1, a name under ".invalid" NXDOMAIN, other types with no
answer.
"""

import argparse
import base64
import re
import hashlib
import hmac
import json
import select
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOLERANCE = 300
TWILIO = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")


class State:
    def __init__(self, log_path, secret):
        self.cond = threading.Condition()
        self.log_path = log_path
        self.secret = secret
        self.entries = []
        self.attempts = {}
        self.path_counts = {}
        self.down = False
        self.refuse = 0
        self.refuse_status = 503

    def reset(self):
        with self.cond:
            self.entries = []
            self.attempts = {}
            self.path_counts = {}
            self.down = False
            self.refuse = 0
            self.refuse_status = 503
            self.cond.notify_all()


def key_of(secret):
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except ValueError:
            pass
    return secret.encode()


def verify(secret, wid, ts, sigs, body):
    if secret is None or secret == "" or sigs is None:
        return None
    if not wid or not ts:
        return False
    try:
        if abs(time.time() - int(ts)) > TOLERANCE:
            return False
    except ValueError:
        return False
    mac = hmac.new(key_of(secret), b"%s.%s.%s" % (wid.encode(), ts.encode(),
                                                   body), hashlib.sha256)
    want = base64.b64encode(mac.digest()).decode()
    for sig in sigs.split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, want):
            return True
    return False


def first(query, name, default=None):
    values = query.get(name)
    return values[0] if values else default


def lookup(message, path):
    count = path.endswith("#")
    if count:
        path = path[:-1]
    value = message
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() \
                and int(part) < len(value):
            value = value[int(part)]
        else:
            return "-"
    if count:
        return str(len(value)) if isinstance(value, list) else "-"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webhook-receiver"

    def setup(self):
        self.request.settimeout(30)
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.request.close()
                raise
        super().setup()

    def handle_one_request(self):
        super().handle_one_request()
        if not self.raw_requestline and not getattr(self, "seen", False):
            self.record({"path": "-", "query": "", "headers": {},
                         "body": "", "id": "", "attempt": 0, "valid": None,
                         "answer": "no-request"})
        self.seen = True

    def record(self, entry):
        state = self.server.state
        entry["time"] = time.time()
        entry["sni"] = getattr(self.request, "callhq_sni", None)
        with state.cond:
            entry["n"] = len(state.entries) + 1
            state.entries.append(entry)
            if state.log_path:
                with open(state.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            state.cond.notify_all()

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    # ---------------------------------------------------------- webhooks

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path.startswith("/_"):
            self.reply(404, '{"error":"not found"}')
            return

        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qs(url.query)
        state = self.server.state

        twilio = TWILIO.match(url.path)
        if twilio:
            self.twilio(twilio.group(1), url, body)
            return

        headers = {k.lower(): v for k, v in self.headers.items()}
        wid = headers.get("webhook-id", "")
        secret = first(query, "secret", state.secret)
        valid = verify(secret, wid, headers.get("webhook-timestamp"),
                       headers.get("webhook-signature"), body)

        with state.cond:
            attempt = state.attempts.get(wid, 0) + 1
            state.attempts[wid] = attempt
            path_n = state.path_counts.get(url.path, 0) + 1
            state.path_counts[url.path] = path_n
            down = state.down

        def limit(name):
            try:
                return int(first(query, name, "0"))
            except ValueError:
                return 0

        if down:
            answer = "down"
        elif attempt <= limit("hang"):
            answer = "hang"
        elif attempt <= limit("close"):
            answer = "closed"
        elif attempt <= limit("fail"):
            answer = int(first(query, "status", "500"))
        elif path_n <= limit("fail_first"):
            answer = 500
        else:
            answer = 200

        self.record({
            "path": url.path, "query": url.query, "headers": headers,
            "body": body.decode("utf-8", "replace"), "id": wid,
            "attempt": attempt, "valid": valid, "answer": answer,
        })

        if answer in ("down", "closed"):
            self.close_connection = True
            self.request.shutdown(socket.SHUT_RDWR)
            return

        if answer == "hang":
            self.hang()
            return

        if limit("delay"):
            time.sleep(limit("delay") / 1000.0)

        if 200 <= answer < 300:
            self.reply(answer, '{"ok":true}')
        else:
            self.reply(answer, '{"error":"failing on purpose"}')

    def twilio(self, sid, url, body):
        state = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        form = parse_qs(body.decode("utf-8", "replace"),
                        keep_blank_values=True)
        auth = headers.get("authorization", "")
        try:
            auth = base64.b64decode(auth[6:]).decode() \
                if auth.startswith("Basic ") else None
        except ValueError:
            auth = None
        message = {"type": "twilio.sms", "auth": auth}
        for name in ("From", "To", "Body"):
            if name in form:
                message[name] = form[name][0]
        wid = "%s %s" % (message.get("To"), message.get("Body"))

        with state.cond:
            attempt = state.attempts.get(wid, 0) + 1
            state.attempts[wid] = attempt
            answer = 201
            if state.refuse > 0:
                state.refuse -= 1
                answer = state.refuse_status

        self.record({
            "path": url.path, "query": url.query, "headers": headers,
            "body": body.decode("utf-8", "replace"), "id": wid,
            "attempt": attempt, "answer": answer, "message": message,
            "valid": auth is not None and auth.split(":", 1)[0] == sid,
        })

        if answer == 201:
            self.reply(201, json.dumps({
                "sid": "SM%032x" % len(state.entries), "status": "queued",
                "from": message.get("From"), "to": message.get("To"),
                "body": message.get("Body")}))
        else:
            self.reply(answer, json.dumps({
                "code": 20000 + answer, "message": "refused on purpose",
                "status": answer}))

    def hang(self):
        # until the client goes away: a read gives EOF or an error
        self.close_connection = True
        deadline = time.time() + 120
        sock = self.request
        while time.time() < deadline:
            r, _, _ = select.select([sock], [], [], 0.5)
            if r:
                try:
                    if not sock.recv(4096):
                        return
                except (OSError, ssl.SSLError):
                    return

    # ----------------------------------------------------------- control

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        state = self.server.state

        if url.path == "/_control":
            if first(query, "reset"):
                state.reset()
            down = first(query, "down")
            if down is not None:
                with state.cond:
                    state.down = down == "1"
            refuse = first(query, "refuse")
            if refuse is not None:
                with state.cond:
                    state.refuse = int(refuse)
                    state.refuse_status = int(first(query, "refuse_status",
                                                    "503"))
            self.reply(200, "ok\n", "text/plain")

        elif url.path == "/_count":
            path = first(query, "path", "/")
            with state.cond:
                n = sum(1 for e in state.entries if e["path"] == path)
            self.reply(200, "%d\n" % n, "text/plain")

        elif url.path == "/_log":
            path = first(query, "path")
            with state.cond:
                lines = [json.dumps(e, ensure_ascii=False) + "\n"
                         for e in state.entries
                         if path is None or e["path"] == path]
            self.reply(200, "".join(lines), "application/x-ndjson")

        elif url.path == "/_wait":
            self.reply(200, self.wait(query), "text/plain")

        elif url.path == "/_pgwait":
            self.reply(200, self.pgwait(query), "text/plain")

        else:
            self.reply(404, '{"error":"not found"}')

    def wait(self, query):
        state = self.server.state
        path = first(query, "path", "/")
        until = int(first(query, "until", "1"))
        deadline = time.time() + float(first(query, "timeout", "20"))

        any_answer = first(query, "count") == "any"

        def delivered():
            return sum(1 for e in state.entries if e["path"] == path
                       and (any_answer or isinstance(e["answer"], int)
                            and 200 <= e["answer"] < 300))

        with state.cond:
            while delivered() < until and time.time() < deadline:
                state.cond.wait(min(0.5, max(deadline - time.time(), 0.01)))
            got = delivered()

        time.sleep(float(first(query, "settle", "0")))

        with state.cond:
            entries = [e for e in state.entries if e["path"] == path]

        if first(query, "summary"):
            ok = [e["id"] for e in entries if isinstance(e["answer"], int)
                  and 200 <= e["answer"] < 300]
            out = ["requests=%d ids=%d duplicates=%d valid=%d\n"
                   % (len(entries), len(set(e["id"] for e in entries)),
                      len(ok) - len(set(ok)),
                      sum(1 for e in entries if e["valid"]))]
            if got < until:
                out.append("timed out: %d of %d\n" % (got, until))
            return "".join(out)

        fields = [f for f in first(query, "fields", "").split(",") if f]
        headers = [h.lower() for h in first(query, "headers", "").split(",")
                   if h]
        aliases = {}
        out = []

        for e in entries:
            alias = aliases.setdefault(e["id"], chr(ord("A") + len(aliases)))
            try:
                message = e.get("message") \
                    or json.loads(e["body"]).get("message", {})
            except (ValueError, AttributeError):
                message = {}
            valid = {True: "valid", False: "invalid",
                     None: "unsigned"}[e["valid"]]
            line = [str(message.get("type", "?")), str(e["answer"]), alias,
                    valid]
            line += ["%s=%s" % (f, json.dumps(e["sni"]) if f == "@sni"
                                else lookup(message, f)) for f in fields]
            line += ["%s=%s" % (h, json.dumps(e["headers"][h])
                                if h in e["headers"] else "-")
                     for h in headers]
            out.append(" ".join(line) + "\n")

        gaps = first(query, "min_gaps")
        if gaps is not None:
            want = [float(g) for g in gaps.split(",")]
            short = []
            by_id = {}
            for e in entries:
                by_id.setdefault(e["id"], []).append(e["time"])
            for wid, times in by_id.items():
                for k in range(1, len(times)):
                    gap = (times[k] - times[k - 1]) * 1000
                    if k - 1 < len(want) and gap < want[k - 1]:
                        short.append("gap %d of %s is %d ms < %d ms\n"
                                     % (k, aliases[wid], gap, want[k - 1]))
            out += short or ["gaps ok\n"]

        if got < until:
            out.append("timed out: %d of %d\n" % (got, until))

        return "".join(out)

    def pgwait(self, query):
        conninfo = self.server.state.pg
        if not conninfo:
            return "no --pg given\n"
        sql = first(query, "sql", "select 1")
        want = first(query, "want", "")
        deadline = time.time() + float(first(query, "timeout", "20"))
        while True:
            run = subprocess.run(["psql", "-X", "-q", "-tA", "-v",
                                  "ON_ERROR_STOP=1", conninfo, "-c", sql],
                                 capture_output=True, text=True)
            got = (run.stdout + run.stderr).strip()
            if got == want or time.time() >= deadline:
                return got + "\n"
            time.sleep(0.1)


def dns_answer(query):
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, i = [], 12
    while i < len(query) and query[i]:
        labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
        i += 1 + query[i]
    qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
    question = query[12:i + 5]
    name = ".".join(labels).lower()
    if name == "invalid" or name.endswith(".invalid"):
        return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
    if qtype != 1:
        return struct.pack("!HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question
            + struct.pack("!HHHIH", 0xc00c, 1, 1, 60, 4)
            + socket.inet_aton("127.0.0.1"))


def serve_dns(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    while True:
        data, peer = sock.recvfrom(512)
        try:
            answer = dns_answer(data)
        except (IndexError, struct.error):
            answer = None
        if answer:
            sock.sendto(answer, peer)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--log")
    p.add_argument("--secret")
    p.add_argument("--dns-port", type=int)
    p.add_argument("--pg")
    args = p.parse_args()

    if args.dns_port:
        threading.Thread(target=serve_dns, args=(args.host, args.dns_port),
                         daemon=True).start()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = State(args.log, args.secret)
    server.state.pg = args.pg

    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key or args.tls_cert)

        def sni(sslsock, name, context):
            sslsock.callhq_sni = name

        ctx.sni_callback = sni
        # the handshake happens in the connection's thread (Handler.setup)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    print("webhook receiver listening on %s:%d" % (host, port), flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
