#!/usr/bin/env python3
"""Mock OpenAI-compatible chat-completions server for ngx_http_callhq_module.

Standard library only (runs under Debian's /usr/bin/python3).

Usage
-----
    python3 t/mock/mock_model.py --port 18089 [--host 127.0.0.1]
                                 [--stream-close] [--verbose]

Once the socket is listening it prints exactly one line to stdout:

    mock model listening on 127.0.0.1:18089

(with --port 0 the kernel-chosen port is printed).  It runs until SIGTERM or
SIGINT and then exits with status 0.  Every connection gets its own daemon
thread, so slow / stalled replies do not block other requests.  Nothing is
logged to stderr unless --verbose is given (then one line per request, with
the peer's ip:port, so upstream keep-alive reuse is visible).

HTTP framing
------------
* Responses are HTTP/1.1; keep-alive follows the request (HTTP/1.1 keeps the
  connection open unless "Connection: close"; HTTP/1.0 closes unless
  "Connection: keep-alive").
* Non-stream replies always carry a correct Content-Length.
* Stream replies to an HTTP/1.1 request use "Transfer-Encoding: chunked" (one
  chunk per SSE event, connection reusable afterwards).  Stream replies to an
  HTTP/1.0 request (nginx's default proxy_http_version) have no length and
  "Connection: close"; the body ends when the connection closes.
  --stream-close forces the close-delimited form for HTTP/1.1 requests too.
* Request bodies may use Content-Length or chunked encoding.

Endpoints
---------
POST /v1/chat/completions, any POST path ending in /chat/completions, POST /
    Request JSON: {model, messages:[{role, content}], temperature, max_tokens,
    stream}.  Only "messages" (a list of objects) is required; "model"
    defaults to "recall".  A body that is not a JSON object, or lacks a valid
    "messages" list, gets 400 with an OpenAI-style error:
        {"error":{"message":...,"type":"invalid_request_error",
                  "param":null,"code":null}}

    Non-stream reply (Content-Type: application/json):
        {"id":"chatcmpl-...","object":"chat.completion","created":<unix>,
         "model":<model>,"choices":[{"index":0,"message":{"role":"assistant",
         "content":TEXT},"finish_reason":"stop"}],
         "usage":{"prompt_tokens":P,"completion_tokens":C,"total_tokens":P+C}}

    Stream reply ("stream": true; Content-Type: text/event-stream), each event
    "data: <json>\\n\\n", written and flushed one by one:
        1. chunk with delta {"role":"assistant","content":""}
        2. one chunk per piece of TEXT, delta {"content": piece}; TEXT is cut
           at word boundaries and no piece is longer than 8 characters, so
           every non-trivial reply has several deltas
        3. chunk with empty delta {} and finish_reason "stop"
        4. usage chunk {"id":..,"object":"chat.completion.chunk",...,
           "choices":[],"usage":{...}}
        5. data: [DONE]
    JSON is emitted compact with raw UTF-8 (ensure_ascii=False), unless the
    ascii or pretty modifier says otherwise (below).

    Token counts are a toy: number of whitespace-separated words, at least 1.
    prompt_tokens counts the words of all message contents together,
    completion_tokens the words of TEXT.

GET /health                  -> 200 "ok" (text/plain)
GET /_mock/requests[?n=K]    -> JSON array of the last K request bodies
                                received on the chat endpoints (all kept ones,
                                at most 1000, when n is absent), oldest first.
                                Each is the parsed JSON body, or the raw text
                                if it was not JSON.  Add &full=1 to get objects
                                {"method","path","version","headers":[[k,v]..],
                                 "body"} instead.
POST /_mock/reset            -> clears that list, replies {"ok":true}
GET on a chat path -> 405; any other path -> 404 (OpenAI-style error JSON).

Model names
-----------
The "model" string is split on "+"; each part is either a base behaviour or a
modifier, e.g. "echo", "slow-2000", "echo+slow-2000", "digest+split",
"recall+slowstream-500".  Parts that are not recognised are ignored, so an
unknown model name (e.g. "gpt-4o-mini") behaves like "recall".  Matching is
case-insensitive.  The reply's "model" field is the request's model verbatim.

Base behaviours (which TEXT is produced):
  echo      TEXT = json.dumps(messages, separators=(',',':'),
                              ensure_ascii=False)
            i.e. exactly the messages array that arrived upstream.
  parrot    TEXT = the text of the last user message, as it is (empty when
            there is none), so a test picks the reply's exact characters.
  long-<n>  TEXT = n characters: "0000001 0000002 0000003 ..." (each number
            seven digits and a space), cut to n: a large reply from a small
            request.
  digest    TEXT = compact JSON array with one "<role>:<sha256-12>" string per
            message, <sha256-12> being the first 12 hex digits of the SHA-256
            of the content's UTF-8 bytes (a non-string content is hashed as
            its compact JSON text), e.g. ["system:1a2b3c4d5e6f","user:..."].
  recall    (default) a toy assistant with memory of the conversation.  From
            the user messages it learns facts, later ones overriding earlier:
              "my name is X" / "call me X" / "I am called X"   -> name
              "I live in X" / "I am from X" / "I'm from X"    -> place
              "I like|love|enjoy X"                           -> likes (list)
              "my favourite|favorite T is X"                  -> favourite T
              "I work as (a|an) X" / "my job is X"            -> job
            and answers questions in the last user message:
              "what is my name?" / "who am I?" -> "Your name is Sarah."
              "where do I live?" / "where am I from?" -> "You live in Paris."
              "what do I like?"  -> "You like tea and chess."
              "what is my favourite colour?" -> "Your favourite colour is
                                                 blue."
              "what do I do?" / "what is my job?" -> "You work as a baker."
            (unknown facts: "You haven't told me your name yet." etc.).
            If the last message states new facts it acknowledges them
            ("Nice to meet you, Sarah! I'll remember that. (turn 1)");
            otherwise it replies
                You said: "<last user message>" (turn N)
            where N is the number of user messages in the request.

Modifiers (fault injection):
  slow-<ms>        sleep <ms> before sending the response headers.
  slowstream-<ms>  stream: headers, role chunk and the first content delta go
                   out at once, then sleep <ms> before every further content
                   delta and before the finish chunk.  Non-stream: headers and
                   the first half of the body at once, the rest after <ms>.
  fail-<status>    reply with that HTTP status (400..599) and an OpenAI-style
                   error JSON body, for stream and non-stream requests alike
                   (429 also gets "Retry-After: 1").  Combined with slow-<ms>
                   the delay comes first.
  cut-after-<n>    stream: send the role chunk and <n> content deltas, then
                   close the connection (FIN): no finish chunk, no usage, no
                   [DONE] and, with chunked encoding, no terminating 0 chunk.
                   If TEXT has fewer than <n> pieces all of them are sent and
                   the cut happens before the finish chunk.  Non-stream: send
                   headers with the full Content-Length but only the first half
                   of the body, then close.
  reset-after-<n>  like cut-after-<n> but the connection is aborted with a TCP
                   RST (SO_LINGER 0) instead of a FIN.
  split[-<ms>]     the response body (SSE events plus chunked framing, or the
                   JSON body) is written in tiny writes of 1,3,7,2,13,5,1,8,4,11
                   ... bytes (cycling), with TCP_NODELAY and a sleep of <ms>
                   (default 2) after each write, so the pieces arrive as
                   separate TCP segments and events / UTF-8 sequences / chunk
                   headers straddle reads.  Headers are sent in one write.
  pieces-<n>       stream: TEXT is cut into pieces of n characters each (the
                   last one shorter), words or not, instead of the usual
                   pieces of at most 8.

Modifiers (tool calls):
  tool[-<n>]       when the request has "tools" and its last message is not a
                   tool result (role "tool"), the reply calls tools instead of
                   saying TEXT: n calls (default 1, parallel calls for n > 1),
                   call i to tools[i mod len(tools)] with id
                   "call_<turn>_<i>" (turn: the number of user messages) and
                   arguments the compact JSON {"q": <last user message>,
                   "i": i}; content null, finish_reason "tool_calls".
                   Stream: after the role chunk, for each call one chunk
                   with {index, id, type, function: {name, arguments: ""}},
                   then its arguments in pieces of at most 8 characters
                   (pieces-<n> applies), one chunk each; cut-after-<n> and
                   reset-after-<n> count those pieces.  After a tool result,
                   the reply is TEXT as without the modifier (echo shows the
                   assistant's tool_calls and the results as they arrived).

Modifiers (how the JSON of a reply is written; TEXT and the pieces stay the
same):
  ascii            every JSON the reply carries (the non-stream body, each
                   stream event) is written with ensure_ascii=True: non-ASCII
                   characters as lower-case \\uXXXX escapes, characters
                   outside the BMP as surrogate pairs ("\\u00e9" for e-acute,
                   "\\ud83d\\ude00" for U+1F600), besides \\" \\\\ \\n \\r \\t
                   \\b \\f; control characters and DEL as \\u00XX.
  pretty           JSON with whitespace: the non-stream body indented by 2
                   (one member per line), stream events on one line each with
                   json.dumps' default separators ", " and ": ".
  badjson-<kind>   stream: right after the first content delta (after the role
                   chunk if TEXT is empty) one extra event whose data is not
                   valid JSON; it is a content chunk whose content is "bad:"
                   followed by the fault, so that a client that took it would
                   show "bad:".  Non-stream: the reply body itself carries the
                   fault at the end of its content string (Content-Length
                   still exact).  <kind> is one of
                     utf8           a raw 0xFF byte
                     overlong       the overlong UTF-8 form C0 AF of "/"
                     utf8surrogate  ED A0 80, UTF-8 of the surrogate U+D800
                     surrogate      a lone high surrogate escape \\ud83d
                     lowsurrogate   a lone low surrogate escape \\ude00
                     nul            the escape \\u0000
                     trailing       a valid chunk followed by one more "}"
                   (for trailing, the non-stream body gets the "}" after it).
"""

import argparse
import collections
import hashlib
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 64 * 1024 * 1024
MAX_RECORDS = 1000
SPLIT_SIZES = (1, 3, 7, 2, 13, 5, 1, 8, 4, 11)
PIECE_MAX = 8

VERBOSE = False
STREAM_CLOSE = False

_records = collections.deque(maxlen=MAX_RECORDS)
_records_lock = threading.Lock()


class BadRequest(Exception):
    pass


# ---------------------------------------------------------------- helpers


def dumps(obj):
    return json.dumps(obj, separators=(',', ':'), ensure_ascii=False)


def wire(obj, opts, lines=False):
    """A reply's JSON as bytes, as the ascii / pretty modifiers have it
    (lines: the pretty form may span lines: a non-stream body)."""
    if opts['pretty']:
        text = json.dumps(obj, ensure_ascii=opts['ascii'],
                          indent=2 if lines else None)
    else:
        text = json.dumps(obj, separators=(',', ':'),
                          ensure_ascii=opts['ascii'])
    return text.encode('utf-8')


# badjson-<kind>: what replaces BAD_MARK in the encoded JSON
BAD_MARK = 'mock-bad-json-mark'
BAD_JSON = {
    'utf8': b'\xff',
    'overlong': b'\xc0\xaf',
    'utf8surrogate': b'\xed\xa0\x80',
    'surrogate': b'\\ud83d',
    'lowsurrogate': b'\\ude00',
    'nul': b'\\u0000',
    'trailing': b'',
}


def spoil(data, kind):
    """Encoded JSON holding BAD_MARK, made invalid as badjson-<kind> says."""
    data = data.replace(BAD_MARK.encode('ascii'), BAD_JSON[kind])
    if kind == 'trailing':
        data = data.rstrip(b'\n') + b'}'
    return data


def content_text(content):
    """Plain text of a message content (string or list of parts)."""
    if content is None:
        return ''
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get('text'), str):
                out.append(part['text'])
            elif isinstance(part, str):
                out.append(part)
        return ' '.join(out)
    return dumps(content)


def count_tokens(text):
    return max(1, len(text.split()))


def split_pieces(text):
    """Cut text at word boundaries into pieces of at most PIECE_MAX chars."""
    out = []
    for word in re.findall(r'\S+\s*|\s+', text):
        while len(word) > PIECE_MAX:
            out.append(word[:PIECE_MAX])
            word = word[PIECE_MAX:]
        if word:
            out.append(word)
    return out


def parse_model(model):
    opts = {
        'base': 'recall', 'slow': 0, 'slowstream': None, 'fail': None,
        'cut': None, 'reset': False, 'split': None,
        'ascii': False, 'pretty': False, 'badjson': None,
        'long': 0, 'pieces': None, 'tools': 0,
    }
    for part in model.lower().split('+'):
        part = part.strip()
        if part in ('echo', 'digest', 'recall', 'parrot'):
            opts['base'] = part
        elif part in ('ascii', 'pretty'):
            opts[part] = True
        elif (m := re.fullmatch(r'badjson-(%s)' % '|'.join(BAD_JSON), part)):
            opts['badjson'] = m.group(1)
        elif (m := re.fullmatch(r'slow-(\d+)', part)):
            opts['slow'] = int(m.group(1))
        elif (m := re.fullmatch(r'slowstream-(\d+)', part)):
            opts['slowstream'] = int(m.group(1))
        elif (m := re.fullmatch(r'fail-(\d{3})', part)):
            st = int(m.group(1))
            opts['fail'] = st if 400 <= st <= 599 else 500
        elif (m := re.fullmatch(r'(cut|reset)-after-(\d+)', part)):
            opts['cut'] = int(m.group(2))
            opts['reset'] = m.group(1) == 'reset'
        elif (m := re.fullmatch(r'long-(\d+)', part)):
            opts['base'] = 'long'
            opts['long'] = int(m.group(1))
        elif (m := re.fullmatch(r'tool(?:-(\d+))?', part)):
            opts['tools'] = max(1, int(m.group(1))) if m.group(1) else 1
        elif (m := re.fullmatch(r'pieces-(\d+)', part)):
            opts['pieces'] = max(1, int(m.group(1)))
        elif (m := re.fullmatch(r'split(?:-(\d+))?', part)):
            opts['split'] = int(m.group(1)) if m.group(1) else 2
    return opts


# ---------------------------------------------------------------- replies


def digest_text(messages):
    out = []
    for msg in messages:
        c = msg.get('content')
        c = c if isinstance(c, str) else ('' if c is None else dumps(c))
        h = hashlib.sha256(c.encode('utf-8')).hexdigest()[:12]
        out.append('%s:%s' % (msg.get('role'), h))
    return dumps(out)


_VAL = r"([^.,;!?\n]+)"
_FACT_RES = [
    ('name', re.compile(r"\b(?:my name is|call me|i am called|i'm called)\s+"
                        r"([^\W\d_][\w'-]*)", re.I)),
    ('place', re.compile(r"\b(?:i live in|i am from|i'm from)\s+" + _VAL,
                         re.I)),
    ('job', re.compile(r"\b(?:i work as|my job is)\s+" + _VAL, re.I)),
    ('fav', re.compile(r"\bmy fav(?:ou?)rite\s+([\w ]+?)\s+is\s+" + _VAL,
                       re.I)),
    ('like', re.compile(r"\bi (?:really |also )?(?:like|love|enjoy)\s+" + _VAL,
                        re.I)),
]


def extract_facts(text, facts):
    found = []
    for kind, rx in _FACT_RES:
        for m in rx.finditer(text):
            if kind == 'fav':
                key = m.group(1).strip().lower()
                facts['fav'][key] = m.group(2).strip()
                found.append(('fav', key))
            elif kind == 'like':
                val = m.group(1).strip()
                if val.lower() not in [v.lower() for v in facts['like']]:
                    facts['like'].append(val)
                found.append(('like', val))
            else:
                facts[kind] = m.group(1).strip()
                found.append((kind, facts[kind]))
    return found


def join_list(items):
    if len(items) <= 1:
        return ''.join(items)
    return ', '.join(items[:-1]) + ' and ' + items[-1]


def answer_question(q, facts):
    if re.search(r"\b(?:what(?:'s| is) my name|who am i)\b", q, re.I):
        if facts['name']:
            return 'Your name is %s.' % facts['name']
        return "You haven't told me your name yet."
    if re.search(r"\bwhere (?:do i live|am i from|do i come from)\b", q, re.I):
        if facts['place']:
            return 'You live in %s.' % facts['place']
        return "You haven't told me where you live yet."
    m = re.search(r"\bwhat(?:'s| is) my fav(?:ou?)rite\s+([\w ]+?)\s*\??$",
                  q.strip(), re.I)
    if m:
        key = m.group(1).strip().lower()
        if key in facts['fav']:
            return 'Your favourite %s is %s.' % (key, facts['fav'][key])
        return "You haven't told me your favourite %s yet." % key
    if re.search(r"\bwhat do i (?:like|love|enjoy)\b", q, re.I):
        if facts['like']:
            return 'You like %s.' % join_list(facts['like'])
        return "You haven't told me what you like yet."
    if re.search(r"\b(?:what do i do|what(?:'s| is) my job)\b", q, re.I):
        if facts['job']:
            return 'You work as %s.' % facts['job']
        return "You haven't told me what you do yet."
    return None


def recall_text(messages):
    users = [content_text(m.get('content')) for m in messages
             if m.get('role') == 'user']
    turn = len(users)
    if not users:
        return 'Hello! How can I help you? (turn 0)'
    facts = {'name': None, 'place': None, 'job': None, 'like': [], 'fav': {}}
    for text in users[:-1]:
        extract_facts(text, facts)
    last = users[-1]
    new = extract_facts(last, facts)
    ans = answer_question(last, facts)
    if ans is not None:
        return ans
    if new:
        if facts['name'] and any(k == 'name' for k, _ in new):
            return "Nice to meet you, %s! I'll remember that. (turn %d)" % (
                facts['name'], turn)
        return "Got it, I'll remember that. (turn %d)" % turn
    return 'You said: "%s" (turn %d)' % (last.strip(), turn)


def long_text(n):
    return ''.join('%07d ' % i for i in range(1, n // 8 + 2))[:n]


def tool_calls(opts, body, messages):
    """The calls of the tool modifier, or [] (see the module docstring)."""
    tools = body.get('tools')
    if not opts['tools'] or not isinstance(tools, list) or not tools or \
            (messages and messages[-1].get('role') == 'tool'):
        return []
    users = [m for m in messages if m.get('role') == 'user']
    q = content_text(users[-1].get('content')) if users else ''
    calls = []
    for i in range(opts['tools']):
        tool = tools[i % len(tools)]
        fn = tool.get('function') if isinstance(tool, dict) else None
        name = fn.get('name') if isinstance(fn, dict) else None
        calls.append({'id': 'call_%d_%d' % (len(users), i), 'type': 'function',
                      'function': {'name': name if isinstance(name, str)
                                   else 'tool',
                                   'arguments': dumps({'q': q, 'i': i})}})
    return calls


def make_text(base, messages):
    if base == 'echo':
        return dumps(messages)
    if base == 'digest':
        return digest_text(messages)
    if base == 'parrot':
        users = [m for m in messages if m.get('role') == 'user']
        return content_text(users[-1].get('content')) if users else ''
    return recall_text(messages)


_ERR_TYPES = {
    400: ('invalid_request_error', None),
    401: ('invalid_request_error', 'invalid_api_key'),
    403: ('permission_error', None),
    404: ('invalid_request_error', 'model_not_found'),
    408: ('timeout', None),
    429: ('rate_limit_error', 'rate_limit_exceeded'),
    500: ('server_error', None),
    502: ('server_error', None),
    503: ('server_error', 'overloaded'),
    504: ('timeout', None),
}


def error_body(status, message, code=False):
    etype, dcode = _ERR_TYPES.get(
        status, ('invalid_request_error' if status < 500 else 'server_error',
                 None))
    return {'error': {'message': message, 'type': etype, 'param': None,
                      'code': dcode if code is False else code}}


# ---------------------------------------------------------------- handler


class Abort(Exception):
    """Connection was deliberately cut; stop handling silently."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'mock-model/1.0'

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                       1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if VERBOSE:
            sys.stderr.write('%s:%s - %s\n' % (self.client_address[0],
                                               self.client_address[1],
                                               fmt % args))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except Abort:
            self.close_connection = True
        except (ConnectionError, socket.timeout, OSError) as e:
            if VERBOSE:
                sys.stderr.write('connection error: %r\n' % (e,))
            self.close_connection = True

    # -- low level output

    def _write(self, data, split=None):
        if not data:
            return
        if split is None:
            self.wfile.write(data)
            return
        i = 0
        k = self._split_idx
        while i < len(data):
            n = SPLIT_SIZES[k % len(SPLIT_SIZES)]
            k += 1
            self.wfile.write(data[i:i + n])
            i += n
            if split:
                time.sleep(split / 1000.0)
        self._split_idx = k

    def _abort(self, reset):
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET,
                                           socket.SO_LINGER,
                                           struct.pack('ii', 1, 0))
                fd = self.connection.detach()
                os.close(fd)
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise Abort()

    def _simple(self, status, body, ctype='application/json', extra=()):
        if not isinstance(body, bytes):
            body = (dumps(body) + '\n').encode('utf-8') \
                if ctype == 'application/json' else body.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self._conn_header()
        self.end_headers()
        if self.command != 'HEAD':
            self._write(body)

    def _conn_header(self):
        if self.close_connection:
            self.send_header('Connection', 'close')
        elif self.request_version == 'HTTP/1.0':
            self.send_header('Connection', 'keep-alive')

    def _read_body(self):
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        if 'chunked' in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BadRequest('truncated chunked body')
                try:
                    size = int(line.split(b';', 1)[0].strip(), 16)
                except ValueError:
                    raise BadRequest('bad chunk size')
                if size == 0:
                    while True:  # trailers
                        line = self.rfile.readline(65537)
                        if line in (b'\r\n', b'\n', b''):
                            break
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    raise BadRequest('body too large')
                data = self.rfile.read(size)
                if len(data) != size:
                    raise BadRequest('truncated chunked body')
                out += data
                self.rfile.readline(65537)
        cl = self.headers.get('Content-Length')
        if cl is None:
            return b''
        try:
            n = int(cl)
        except ValueError:
            raise BadRequest('bad Content-Length')
        if n < 0 or n > MAX_BODY:
            raise BadRequest('bad Content-Length')
        data = self.rfile.read(n)
        if len(data) != n:
            raise BadRequest('truncated body')
        return data

    # -- dispatch

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == '/health':
            self._simple(200, 'ok\n', 'text/plain')
        elif url.path == '/_mock/requests':
            qs = parse_qs(url.query)
            with _records_lock:
                recs = list(_records)
            try:
                n = int(qs.get('n', [''])[0])
                recs = recs[-n:] if n > 0 else []
            except ValueError:
                pass
            full = qs.get('full', ['0'])[0] not in ('', '0', 'false')
            self._simple(200, recs if full else [r['body'] for r in recs])
        elif url.path == '/' or url.path.endswith('/chat/completions'):
            self._simple(405, error_body(405, 'use POST'),
                         extra=[('Allow', 'POST')])
        else:
            self._simple(404, error_body(404, 'not found: %s' % url.path,
                                         None))

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        path = urlsplit(self.path).path
        try:
            raw = self._read_body()
        except BadRequest as e:
            self.close_connection = True
            self._simple(400, error_body(400, str(e)))
            return
        if path == '/_mock/reset':
            with _records_lock:
                _records.clear()
            self._simple(200, {'ok': True})
        elif path == '/' or path.endswith('/chat/completions'):
            self._chat(path, raw)
        else:
            self._simple(404, error_body(404, 'not found: %s' % path, None))

    def _chat(self, path, raw):
        text = raw.decode('utf-8', 'replace')
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        with _records_lock:
            _records.append({
                'method': self.command, 'path': self.path,
                'version': self.request_version,
                'headers': [[k, v] for k, v in self.headers.items()],
                'body': body if body is not None else text,
            })
        if not isinstance(body, dict):
            self._simple(400, error_body(
                400, 'We could not parse the JSON body of your request.'))
            return
        messages = body.get('messages')
        if not isinstance(messages, list) or \
                not all(isinstance(m, dict) for m in messages):
            self._simple(400, error_body(
                400, "'messages' must be an array of message objects"))
            return
        model = body.get('model')
        model = model if isinstance(model, str) and model else 'recall'
        opts = parse_model(model)
        stream = body.get('stream')
        stream = stream is True or stream in (1, 'true')

        if opts['slow']:
            time.sleep(opts['slow'] / 1000.0)
        if opts['fail']:
            st = opts['fail']
            extra = [('Retry-After', '1')] if st == 429 else []
            self._simple(st, error_body(st, 'mock failure %d for model %s'
                                        % (st, model)), extra=extra)
            return

        calls = tool_calls(opts, body, messages)
        if calls:
            reply = ''
        elif opts['base'] == 'long':
            reply = long_text(opts['long'])
        else:
            reply = make_text(opts['base'], messages)
        ptok = count_tokens(' '.join(content_text(m.get('content'))
                                     for m in messages))
        ctok = count_tokens(reply + ' '.join(
            c['function']['arguments'] for c in calls))
        usage = {'prompt_tokens': ptok, 'completion_tokens': ctok,
                 'total_tokens': ptok + ctok}
        rid = 'chatcmpl-' + uuid.uuid4().hex[:24]
        created = int(time.time())
        self._split_idx = 0
        if stream:
            self._stream(opts, model, rid, created, reply, usage, calls)
        else:
            self._nonstream(opts, model, rid, created, reply, usage, calls)

    def _nonstream(self, opts, model, rid, created, reply, usage, calls):
        message = {'role': 'assistant', 'content': reply}
        if calls:
            message = {'role': 'assistant', 'content': None,
                       'tool_calls': calls}
        obj = {
            'id': rid, 'object': 'chat.completion', 'created': created,
            'model': model,
            'choices': [{'index': 0, 'message': message,
                         'finish_reason': 'tool_calls' if calls else 'stop'}],
            'usage': usage,
        }
        if opts['badjson']:
            obj['choices'][0]['message']['content'] = reply + BAD_MARK
            data = spoil(wire(obj, opts, lines=True) + b'\n', opts['badjson'])
        else:
            data = wire(obj, opts, lines=True) + b'\n'
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self._conn_header()
        self.end_headers()
        half = len(data) // 2
        if opts['cut'] is not None:
            self._write(data[:half], opts['split'])
            self._abort(opts['reset'])
        if opts['slowstream'] is not None:
            self._write(data[:half], opts['split'])
            time.sleep(opts['slowstream'] / 1000.0)
            self._write(data[half:], opts['split'])
        else:
            self._write(data, opts['split'])

    def _stream(self, opts, model, rid, created, reply, usage, calls):
        chunked = self.request_version == 'HTTP/1.1' and not STREAM_CLOSE
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Cache-Control', 'no-cache')
        if chunked:
            self.send_header('Transfer-Encoding', 'chunked')
            self._conn_header()
        else:
            self.send_header('Connection', 'close')
        self.end_headers()
        split = opts['split']

        def emit(payload):
            if isinstance(payload, str):
                payload = payload.encode('utf-8')
            elif not isinstance(payload, bytes):
                payload = wire(payload, opts)
            ev = b'data: ' + payload + b'\n\n'
            if chunked:
                ev = b'%x\r\n' % len(ev) + ev + b'\r\n'
            self._write(ev, split)

        def chunk(delta, finish=None):
            return {'id': rid, 'object': 'chat.completion.chunk',
                    'created': created, 'model': model,
                    'choices': [{'index': 0, 'delta': delta,
                                 'finish_reason': finish}]}

        def emit_bad():
            bad = chunk({'content': 'bad:' + BAD_MARK})
            emit(spoil(wire(bad, opts), opts['badjson']))

        def end(finish):
            emit(chunk({}, finish))
            emit({'id': rid, 'object': 'chat.completion.chunk',
                  'created': created, 'model': model, 'choices': [],
                  'usage': usage})
            emit('[DONE]')
            if chunked:
                self._write(b'0\r\n\r\n', split)
            else:
                self.close_connection = True

        emit(chunk({'role': 'assistant', 'content': ''}))
        if calls:
            self._stream_calls(opts, calls, emit, chunk)
            end('tool_calls')
            return
        if opts['pieces']:
            k = opts['pieces']
            pieces = [reply[i:i + k] for i in range(0, len(reply), k)]
        else:
            pieces = split_pieces(reply)
        if opts['badjson'] and not pieces:
            emit_bad()
        for i, piece in enumerate(pieces):
            if opts['cut'] is not None and i >= opts['cut']:
                self._abort(opts['reset'])
            if opts['slowstream'] is not None and i > 0:
                time.sleep(opts['slowstream'] / 1000.0)
            emit(chunk({'content': piece}))
            if opts['badjson'] and i == 0:
                emit_bad()
        if opts['cut'] is not None:
            self._abort(opts['reset'])
        if opts['slowstream'] is not None:
            time.sleep(opts['slowstream'] / 1000.0)
        end('stop')

    def _stream_calls(self, opts, calls, emit, chunk):
        sent = 0
        for i, call in enumerate(calls):
            emit(chunk({'tool_calls': [{
                'index': i, 'id': call['id'], 'type': 'function',
                'function': {'name': call['function']['name'],
                             'arguments': ''}}]}))
            args = call['function']['arguments']
            k = opts['pieces'] or PIECE_MAX
            for j in range(0, len(args), k):
                if opts['cut'] is not None and sent >= opts['cut']:
                    self._abort(opts['reset'])
                if opts['slowstream'] is not None and sent > 0:
                    time.sleep(opts['slowstream'] / 1000.0)
                emit(chunk({'tool_calls': [{
                    'index': i, 'function': {'arguments': args[j:j + k]}}]}))
                sent += 1
        if opts['cut'] is not None:
            self._abort(opts['reset'])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if VERBOSE:
            super().handle_error(request, client_address)


def main():
    global VERBOSE, STREAM_CLOSE
    ap = argparse.ArgumentParser(description='Mock OpenAI-compatible model '
                                 'server (see module docstring).')
    ap.add_argument('--port', type=int, default=18089)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--stream-close', action='store_true',
                    help='close-delimited streams even for HTTP/1.1')
    ap.add_argument('--verbose', action='store_true')
    args = ap.parse_args()
    VERBOSE = args.verbose
    STREAM_CLOSE = args.stream_close

    srv = Server((args.host, args.port), Handler)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval':
                                                           0.2}, daemon=True)
    t.start()
    host, port = srv.server_address[:2]
    sys.stdout.write('mock model listening on %s:%d\n' % (host, port))
    sys.stdout.flush()
    while not stop.wait(0.2):
        pass
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
