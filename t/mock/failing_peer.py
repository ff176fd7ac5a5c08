#!/usr/bin/env python3
"""An upstream peer that reads each request whole and then fails it.

Standard library only.  For the suites that put it first in an upstream
group with the mock model (t/mock/mock_model.py) behind it, so that nginx
sends the request again to the next peer (proxy_next_upstream): a refused
connection would send nothing, and not exercise the resend.

Usage
-----
    python3 t/mock/failing_peer.py --port 0 [--host 127.0.0.1]

Once listening it prints one line to stdout:

    failing peer listening on 127.0.0.1:PORT

and runs until SIGTERM or SIGINT.

Behaviour
---------
POST to a path containing
    /close/   reads the request (Content-Length or chunked body), then
              closes the connection without answering a byte
    /502/     reads the request, then answers 502 with a JSON error
    anything else: as /close/
and keeps the body it read.

GET /_peer/requests[?n=K]  -> JSON array of the last K bodies read (as
                              text; all kept ones, at most 1000, without n),
                              oldest first
POST /_peer/reset    -> clears the list, {"ok":true}
"""

import argparse
import json
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


_records = []
_records_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        if 'chunked' in te:
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b';', 1)[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n)

    def _answer(self, status, obj):
        body = (json.dumps(obj) + '\n').encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == '/_peer/requests':
            with _records_lock:
                recs = list(_records)
            n = parse_qs(url.query).get('n', [''])[0]
            if n.isdigit():
                recs = recs[-int(n):] if int(n) else []
            self._answer(200, recs)
        else:
            self._answer(404, {'error': 'not found'})

    def do_POST(self):
        body = self._read_body()

        if self.path.startswith('/_peer/reset'):
            with _records_lock:
                _records.clear()
            self._answer(200, {'ok': True})
            return

        with _records_lock:
            _records.append(body.decode('utf-8', 'replace'))
            del _records[:-1000]

        if '/502/' in self.path:
            self.close_connection = True
            self._answer(502, {'error': {'message': 'failing peer',
                                         'type': 'server_error'}})
            return

        # the whole request is read: close without a byte of answer
        self.close_connection = True
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description='An upstream peer that fails '
                                 'every request once it has read it.')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--host', default='127.0.0.1')
    args = ap.parse_args()

    srv = Server((args.host, args.port), Handler)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=srv.serve_forever,
                         kwargs={'poll_interval': 0.2}, daemon=True)
    t.start()
    host, port = srv.server_address[:2]
    sys.stdout.write('failing peer listening on %s:%d\n' % (host, port))
    sys.stdout.flush()
    while not stop.wait(0.2):
        pass
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
