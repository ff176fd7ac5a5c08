# JSON on the request path, without a JSON library: the module checks a
# request body with its own scanner (one object, UTF-8, no \u0000, no lone
# surrogate escapes, nesting at most 512) and reads the few fields it needs
# ("stream") in place; it reads the model's replies the same way and keeps
# their text escaped as the model sent it: each event's "delta" is the
# model's escaped string spliced in, and PostgreSQL decodes the recorded
# reply.
#
# Bodies: a fault answers 400 "body is not valid JSON: <why> (line L,
# column C)", C counted in bytes from 1, at the byte where the scanner
# stopped (::bad_at below computes it from the body sent).
#
# Replies: the mock's "parrot" model answers the last user message as it
# is; its "ascii" modifier writes every JSON of the reply with Python's
# ensure_ascii (e-acute as \u00e9, U+1F600 as \ud83d\ude00), "pretty" with
# whitespace, "badjson-<kind>" sends one event that is not JSON after the
# first delta (see t/mock/mock_model.py). ::py_ascii and ::py_raw below
# write a piece of text as the mock's JSON does, so the events the client
# gets are known byte for byte.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

use Encode qw(decode_utf8);

our $CONFIG = api_location('/') . model_locations();

callhq_defaults(config => $CONFIG, extra_http => 'callhq_webhooks off;',
                accum_error_log => 1,
                valgrind_timeout => 10);

# Ids 15000000-0000-4000-8000-0000000000NN (system prompt SYS-150 each);
# chats and sessions made here without a fixed id are named "j150-...".
#   01  j150-echo (echo)                 02  j150-parrot (parrot+ascii)
#   03  j150-echo-ascii (echo+ascii)     04  j150-pretty (parrot+pretty)
#   05  j150-cut (parrot+ascii+cut-after-3)
#   06  j150-responses (parrot+ascii), for chats without a session
#   2K  j150-bad-<kind> (parrot+ascii+badjson-<kind>), K = 1 .. 7 for
#       utf8, overlong, utf8surrogate, surrogate, lowsurrogate, nul, trailing
#   11  session of 02                    12  session of 03
#   13  session of 04                    14  session of 05
#   3K  session of 2K                    38  session of 21, chats not streamed
our @BAD = (['utf8', 'invalid UTF-8'], ['overlong', 'invalid UTF-8'],
            ['utf8surrogate', 'invalid UTF-8'],
            ['surrogate', 'lone surrogate in a \u escape'],
            ['lowsurrogate', 'lone surrogate in a \u escape'],
            ['nul', '\u0000 is not allowed'],
            ['trailing', 'end of text expected after the JSON value']);

our %ASST = ('01' => 'echo', '02' => 'parrot+ascii', '03' => 'echo+ascii',
             '04' => 'parrot+pretty', '05' => 'parrot+ascii+cut-after-3',
             '06' => 'parrot+ascii',
             map { ('2' . ($_ + 1) => "parrot+ascii+badjson-$BAD[$_][0]") } 0 .. $#BAD);
our %SESS = ('11' => '02', '12' => '03', '13' => '04', '14' => '05', '38' => '21',
             map { ('3' . $_ => "2$_") } 1 .. @BAD);

sub id { sprintf '15000000-0000-4000-8000-0000000000%s', shift }

psql(q{
    delete from callhq.chats
     where name like 'j150-%' or assistant_id::text like '15000000-0000-4000-8000-%';
    delete from callhq.sessions
     where id::text like '15000000-0000-4000-8000-%' or name like 'j150-%'
        or assistant_id::text like '15000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '15000000-0000-4000-8000-%';
} . join('', map { qq{
    insert into callhq.assistants (id, org_id, name, model)
    select '@{[ id($_) ]}', k.org_id, 'j150-$_',
           '{"provider": "openai", "model": "$ASST{$_}",
             "messages": [{"role": "system", "content": "SYS-150"}]}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %ASST) . join('', map { qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, created_at, updated_at)
    select '@{[ id($_) ]}', k.org_id, '@{[ id($SESS{$_}) ]}', 'j150-s$_', 86400,
           '2099-01-01T00:00:00Z', '2015-02-01T00:00:00Z', '2015-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %SESS));

our ($ECHO, $PARROT, $ECHO_ASCII, $PRETTY, $CUT, $RESP) = map { id($_) } qw(01 02 03 04 05 06);
our ($S_PARROT, $S_ECHO, $S_PRETTY, $S_CUT, $S_NOSTREAM) = map { id($_) } qw(11 12 13 14 38);

our @SYS = ([system => 'SYS-150']);

# Texts of the replies (byte strings): two and four byte UTF-8, a
# character outside the BMP, quotes, a backslash, a newline, a tab, and a
# slash (which JSON may escape but Python does not).
our $TEXT = "caf\xc3\xa9 \xf0\x9f\x98\x80 \"quoted\" back\\slash line\nnext\ttab \xe2\x82\xac/end";
our $TEXT2 = "second: \xc3\xa9\xc3\xa8 \"x\" \\ \xf0\x9f\x98\x80\xf0\x9f\x98\x80 \\n not a newline";

# A piece of text as Python's json.dumps writes it inside the quotes,
# with ensure_ascii=True (py_ascii) or False (py_raw).
sub py_ascii {
    my %esc = ('"' => '\\"', '\\' => '\\\\', "\n" => '\\n', "\r" => '\\r',
               "\t" => '\\t', "\x08" => '\\b', "\x0c" => '\\f');
    return join '', map {
        my $o = ord;
        exists $esc{$_}              ? $esc{$_}
        : $o >= 0x20 && $o <= 0x7e  ? $_
        : $o < 0x10000              ? sprintf('\\u%04x', $o)
        : sprintf('\\u%04x\\u%04x', 0xd800 + (($o - 0x10000) >> 10),
                                     0xdc00 + (($o - 0x10000) & 0x3ff))
    } split //, decode_utf8(shift);
}

sub py_raw { my $j = ::cjson(shift); return substr $j, 1, -1 }

# A POST /chat event stream whose deltas are exactly these (escaped) texts.
sub raw_events {
    my ($sid, @raw) = @_;
    my $session = defined $sid ? qq{"$sid"} : 'null';
    my $i = 0;
    my $src = join '', map {
        my $id = $i++ ? '\k<chat>'
               : '(?<chat>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
        quotemeta('data: {"id":"') . $id
        . quotemeta(qq(","sessionId":$session,"path":"chat.output[0].content","delta":"$_)
                    . qq("}\n\n))
    } @raw;
    return qr/\A$src\z/s;
}

# The OpenAI Responses event stream of a reply whose deltas (and whole
# text) are these escaped texts: response.created, a
# response.output_text.delta per delta, response.output_text.done,
# response.completed (as in t/110-chat-stream.t, the texts verbatim).
sub responses_raw_events {
    my ($model, $in, $out, @raw) = @_;
    my $chat = '(?<c>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
    my $q = sub { quotemeta join '', @_ };
    my $ev = sub {
        my ($type, $data) = @_;
        return $q->("event: $type\ndata: ") . $data . $q->("\n\n");
    };
    my $item = $q->('"item_id":"msg_') . '\k<c>' . $q->('","output_index":0,"content_index":0,');
    my $text = join '', @raw;
    my $src = $ev->('response.created',
        $q->('{"type":"response.created","response":{"id":"resp_') . $chat
        . $q->('","object":"response","created_at":') . '\d+'
        . $q->(qq(,"status":"in_progress","error":null,"model":"$model",)
               . '"output":[],"usage":{"input_tokens":0,"output_tokens":0}}}'));
    $src .= $ev->('response.output_text.delta',
        $q->('{"type":"response.output_text.delta",') . $item . $q->(qq("delta":"$_"}))) for @raw;
    $src .= $ev->('response.output_text.done',
        $q->('{"type":"response.output_text.done",') . $item . $q->(qq("text":"$text"})));
    $src .= $ev->('response.completed',
        $q->('{"type":"response.completed","response":{"id":"resp_') . '\k<c>'
        . $q->('","object":"response","created_at":') . '\d+'
        . $q->(qq(,"status":"completed","error":null,"model":"$model","output":[{"id":"msg_)) . '\k<c>'
        . $q->('","type":"message","role":"assistant","status":"completed",'
               . qq("content":[{"type":"output_text","text":"$text","annotations":[]}]}],)
               . qq("usage":{"input_tokens":$in,"output_tokens":$out}}})));
    return qr/\A$src\z/s;
}

# The 400 for a body that is not JSON: $why, at byte $at of $body (an
# offset, or the first place where the string $at is in $body).
sub bad_at {
    my ($body, $why, $at) = @_;
    my $i = $at =~ /^\d+$/ ? $at : index $body, $at;
    die "bad_at: \"$at\" is not in the body\n" if $i < 0;
    my $before = substr $body, 0, $i;
    my $line = 1 + ($before =~ tr/\n//);
    my $column = $i - rindex($before, "\n");
    return ::cerr(400, "body is not valid JSON: $why (line $line, column $column)");
}

sub post { return "POST /chat\n" . shift }

# A fresh chat on the echo assistant and what it answers.
sub fresh {
    my ($input, $more) = @_;
    return post(qq({"assistantId": "$ECHO", "name": "j150-fresh", "input": )
                . ::cjson($input) . ($more ? ", $more" : '') . '}');
}

sub fresh_chat {
    my $input = shift;
    my @ctx = (@SYS, [user => $input]);
    my $e = ::echo(@ctx);
    return ::whole(::chat(input => $input, name => 'j150-fresh', assistantId => $ECHO,
                          messages => \@ctx, output => [[assistant => $e]],
                          usage => ::usage(\@ctx, $e)));
}

sub fresh_events {
    my $input = shift;
    return ::chat_events(undef, ::pieces(::echo(@SYS, [user => $input])));
}

sub session_of {
    my ($sid, @msgs) = @_;
    my $asst = $SESS{ substr $sid, -2 };
    return ::session_body({ id => $sid, orgId => $::ORG_A, name => 'j150-s' . substr($sid, -2),
        status => 'active', assistantId => id($asst), expirationSeconds => \86400,
        expiresAt => '2099-01-01T00:00:00.000Z', createdAt => '2015-02-01T00:00:00.000Z',
        updatedAt => @msgs ? $::TS : '2015-02-01T00:00:00.000Z' }, @msgs);
}

# The chats of a session, as GET /chat?sessionId=...&sortOrder=ASC lists
# them: [input, reply, status] each, the context growing turn by turn.
sub session_chats {
    my ($sid, @turns) = @_;
    my $asst = id($SESS{ substr $sid, -2 });
    my (@ctx, @rows) = (@SYS);
    for my $t (@turns) {
        my ($input, $reply, $status) = @$t;
        push @ctx, [user => $input];
        push @rows, ::chat(input => $input, sessionId => $sid, assistantId => $asst,
                           messages => [@ctx], output => [[assistant => $reply]],
                           ($status // 'completed') eq 'completed'
                               ? (usage => ::usage([@ctx], $reply))
                               : (status => $status));
        push @ctx, [assistant => $reply];
    }
    return ::chat_list(\@rows, sortOrder => 'ASC');
}

# Nesting: the body of POST /session with metadata $n - 1 objects deep
# (the body itself one more).
sub deep_object {
    my $n = shift;
    return '{"name": "j150-deep", "metadata": ' . ('{"a": ' x ($n - 2)) . '{}'
           . ('}' x ($n - 2)) . '}';
}

sub deep_array { my $n = shift; return ('[' x $n) . (']' x $n) }

# Byte sequences that are not UTF-8: a byte never used, an overlong "/",
# UTF-8 of the surrogate U+D800, a sequence cut short, past U+10FFFF, a
# lone continuation byte, overlong two, three and four byte forms, a five
# byte form.
our @BAD_UTF8 = ("\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "\x80",
                 "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x88\x80\x80\x80");

# Lone surrogate escapes in an input string, and where in it the fault is.
our @LONE = (['\ud83d', 0], ['\ude00', 0], ['\uD83D\u0041', 0], ['\ud83dx', 0],
             ['\ud83d\ud83d', 0], ['\udbff\\\\', 0], ['a\\\\\ud800', 3]);

# Faults in an input string (what follows "input": "), why, and where: an
# offset into the string, or the text to find in the body.
our @STRING_FAULTS = (['x\\q"}', 'invalid escape', 1], ['x\\u12"}', 'invalid \\u escape', 1],
                      ['x\\u12g4"}', 'invalid \\u escape', 1],
                      ['x\\u00e"}', 'invalid \\u escape', 1],
                      ['never ends}', 'unterminated string', 'end'], ['x\\', 'unterminated string', 1]);

# What may not follow the object.
our @TAILS = (' x', '{}', ']', ',', ' {"input": "y"}', ' null', "\n\n  }");

# A stream with one event that is not JSON (badjson-<kind>, on session
# 3K): the client gets every other delta, the reply is recorded whole.
sub bad_chunk_bodies {
    my $k = shift;
    my $sid = id("3$k");
    return [raw_events($sid, map { py_ascii($_) } ::pieces($TEXT)),
            session_of($sid, [user => $TEXT], [assistant => $TEXT]),
            session_chats($sid, [$TEXT, $TEXT])];
}

sub bad_chunk_requests {
    my $sid = id('3' . shift);
    return [post(qq({"sessionId": "$sid", "stream": true, "input": ) . ::cjson($TEXT) . '}'),
            "GET /session/$sid", "GET /chat?sessionId=$sid&sortOrder=ASC"];
}

sub bad_chunk_warn {
    my $why = $BAD[shift() - 1][1];
    return [qr/\[warn\] .*callhq: model sent an event that is not JSON: \Q$why\E(?: while |,|$)/];
}

run_tests();

# After all blocks: the failed chats gave their session's turn back.
is(psql(qq{select count(*) from callhq.sessions
            where id::text like '15000000-0000-4000-8000-%' and busy_chat is not null}) + 0, 0,
   "$0 - no session of this file is left busy");
is(psql(q{select count(*) from callhq.chats where name = 'j150-bad-nostream'}) + 0, 0,
   "$0 - a reply that is not JSON recorded no chat");

__DATA__

=== TEST 1: invalid UTF-8 in a string value: a raw 0xFF, overlong forms, a surrogate, cut short, past U+10FFFF
--- request eval
[map { main::post(qq{{"assistantId": "$main::ECHO", "input": "ok \xc3\xa9 then $_ end"}}) } @main::BAD_UTF8]
--- error_code eval
[(400) x 10]
--- response_body eval
[map { my $b = qq{{"assistantId": "$main::ECHO", "input": "ok \xc3\xa9 then $_ end"}};
       main::bad_at($b, 'invalid UTF-8', $_) } @main::BAD_UTF8]



=== TEST 2: ... in a member name, outside a string, and on the other routes (POST and PATCH /session)
--- request eval
["POST /chat\n{\"inp\xffut\": \"x\"}",
 "POST /chat\n{\"input\": \"x\", \xff}",
 "POST /chat\n{\"input\": \xc3\xa9}",
 "POST /session\n{\"name\": \"j150-\xed\xbf\xbf\"}",
 "PATCH /session/$main::S_PARROT\n{\"name\": \"j150-\xc0\x80\"}",
 "GET /session/$main::S_PARROT"]
--- error_code eval
[400, 400, 400, 400, 400, 200]
--- response_body eval
[main::bad_at("{\"inp\xffut\": \"x\"}", 'invalid UTF-8', "\xff"),
 main::bad_at("{\"input\": \"x\", \xff}", 'member name expected', "\xff"),
 main::bad_at("{\"input\": \xc3\xa9}", 'invalid token', "\xc3"),
 main::bad_at("{\"name\": \"j150-\xed\xbf\xbf\"}", 'invalid UTF-8', "\xed"),
 main::bad_at("{\"name\": \"j150-\xc0\x80\"}", 'invalid UTF-8', "\xc0"),
 main::session_of($main::S_PARROT)]



=== TEST 3: valid UTF-8 at the edges passes: U+10FFFF, U+FFFF, U+0080, U+07FF, U+E000
--- request eval
"POST /session\n{\"name\": \"j150-\xf4\x8f\xbf\xbf\xef\xbf\xbf\xc2\x80\xdf\xbf\xee\x80\x80\"}"
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", "name": "j150-\xf4\x8f\xbf\xbf\xef\xbf\xbf\xc2\x80\xdf\xbf\xee\x80\x80", "orgId": /



=== TEST 4: lone surrogate escapes: high alone, low alone, high before a non-surrogate, high twice
--- request eval
[map { main::post(qq{{"assistantId": "$main::ECHO", "input": "$_->[0]"}}) } @main::LONE]
--- error_code eval
[(400) x 7]
--- response_body eval
[map { my $b = qq{{"assistantId": "$main::ECHO", "input": "$_->[0]"}};
       main::bad_at($b, 'lone surrogate in a \u escape',
                    index($b, '"input": "') + length('"input": "') + $_->[1]) } @main::LONE]



=== TEST 5: a surrogate pair escape is one character: the chat goes on, its input is the emoji
--- request eval
main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "pair \\ud83d\\ude00 \\uD83D\\uDE00"}})
--- error_code: 201
--- response_body eval
main::fresh_chat("pair \xf0\x9f\x98\x80 \xf0\x9f\x98\x80")



=== TEST 6: \u0000 in a value or a name: 400; an escaped backslash before "u0000" is text
--- request eval
["POST /chat\n{\"assistantId\": \"$main::ECHO\", \"input\": \"a\\u0000b\"}",
 "POST /chat\n{\"\\u0000\": 1, \"input\": \"x\"}",
 "POST /chat\n{\"input\": \"x\\\\\\u0000\"}",
 "POST /session\n{\"name\": \"j150-nul\", \"metadata\": {\"k\": \"\\\\u0000\"}}"]
--- error_code eval
[400, 400, 400, 201]
--- response_body eval
[main::bad_at("{\"assistantId\": \"$main::ECHO\", \"input\": \"a\\u0000b\"}",
              '\u0000 is not allowed', '\u0000'),
 main::bad_at("{\"\\u0000\": 1, \"input\": \"x\"}", '\u0000 is not allowed', '\u0000'),
 main::bad_at("{\"input\": \"x\\\\\\u0000\"}", '\u0000 is not allowed', 14),
 qr/\A\{"id": "[0-9a-f-]{36}", "name": "j150-nul", "orgId": [^\n]*, "metadata": \{"k": "\\\\u0000"\}, /]



=== TEST 7: nesting: 512 levels pass the scanner and PostgreSQL takes them; 513 do not
--- request eval
["POST /session\n" . main::deep_object(512),
 "POST /session\n" . main::deep_object(513),
 "POST /session\n" . main::deep_array(512),
 "POST /session\n" . main::deep_array(513)]
--- error_code eval
[201, 400, 400, 400]
--- response_body eval
my $meta = ('{"a": ' x 510) . '{}' . ('}' x 510);
[qr/\A\{"id": "[0-9a-f-]{36}", "name": "j150-deep", .*"metadata": \Q$meta\E, .*"messages": \[\]\}\z/s,
 main::bad_at(main::deep_object(513), 'nested too deeply', rindex(main::deep_object(513), '{')),
 ::cerr(400, 'body must be a JSON object'),
 main::bad_at(main::deep_array(513), 'nested too deeply', 512)]



=== TEST 8: 512 levels in a chat: PostgreSQL answers (400 for an input that is no messages, 201 with deep metadata), never 500
--- request eval
[main::post(qq({"assistantId": "$main::ECHO", "input": ) . main::deep_array(511) . '}'),
 main::post(qq({"assistantId": "$main::ECHO", "name": "j150-deep", "input": "deep", "metadata": )
            . ('{"a": ' x 510) . '{}' . ('}' x 510) . '}')]
--- error_code eval
[400, 201]
--- response_body eval
my $meta = ('{"a": ' x 510) . '{}' . ('}' x 510);
my @ctx = (@main::SYS, [user => 'deep']);
my $e = ::echo(@ctx);
[::cerr(400, 'input[0] must be an object'),
 qr/\A\{"id": "[0-9a-f-]{36}", "name": "j150-deep", .*"metadata": \Q$meta\E, .*"messages": \Q@{[ ::echo(@ctx) ]}\E\}\z/s]



=== TEST 9: trailing garbage after the object: 400 where it starts
--- request eval
[map { main::post(qq{{"assistantId": "$main::ECHO", "input": "x"}$_}) } @main::TAILS]
--- error_code eval
[(400) x 7]
--- response_body eval
[map { my $obj = qq{{"assistantId": "$main::ECHO", "input": "x"}};
       main::bad_at("$obj$_", 'end of text expected after the JSON value',
                    length($obj) + length((/^(\s*)/)[0])) } @main::TAILS]



=== TEST 10: whitespace after the object is fine
--- raw_request eval
my $body = qq{{"name": "j150-trailing-ws"}\r\n\t \n};
"POST /session HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer cq_test_a\r\n"
. "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
. "Connection: close\r\n\r\n$body"
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", "name": "j150-trailing-ws", /



=== TEST 11: an empty body on POST /chat is an empty object: "input is required"
--- more_headers
Authorization: Bearer cq_test_a
Content-Type: application/json
Content-Length: 0
--- request
POST /chat
--- error_code: 400
--- response_body eval
::cerr(400, 'input is required')



=== TEST 12: a body of blanks only: 400 "no JSON text", not an empty object
--- raw_request eval
my $body = " \r\n\t ";
"POST /chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer cq_test_a\r\n"
. "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
. "Connection: close\r\n\r\n$body"
--- error_code: 400
--- response_body eval
::cerr(400, 'body is not valid JSON: no JSON text (line 1, column 1)')



=== TEST 13: ... a string, a number, a literal at the top: 400 naming what was expected; an array: not an object
--- request eval
["POST /chat\n\"input\"", "POST /chat\n42", "POST /chat\ntrue", "POST /chat\n[]",
 "POST /chat\n[{\"input\": \"x\", \"stream\": true}]"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
[(map { ::cerr(400, "body is not valid JSON: '{' or '[' expected (line 1, column 1)") } 1 .. 3),
 ::cerr(400, 'body must be a JSON object'), ::cerr(400, 'body must be a JSON object')]



=== TEST 14: "stream" repeated: the last one wins, as in PostgreSQL's jsonb
--- request eval
[main::post(qq{{"stream": true, "assistantId": "$main::ECHO", "name": "j150-fresh", "input": "dup one", "stream": false}}),
 main::post(qq{{"stream": false, "assistantId": "$main::ECHO", "name": "j150-fresh", "input": "dup two", "stream": true}}),
 main::post(qq{{"stream": "yes", "assistantId": "$main::ECHO", "name": "j150-fresh", "input": "dup three", "stream": true}}),
 main::post(qq{{"stream": true, "assistantId": "$main::ECHO", "name": "j150-fresh", "input": "dup four", "stream": null}}),
 main::post(qq{{"stream": true, "assistantId": "$main::ECHO", "name": "j150-fresh", "input": "dup five", "stream": "yes"}})]
--- error_code eval
[201, 200, 200, 201, 400]
--- response_headers eval
["Content-Type: application/json", "Content-Type: text/event-stream",
 "Content-Type: text/event-stream", "Content-Type: application/json",
 "Content-Type: application/json"]
--- response_body eval
[main::fresh_chat('dup one'), main::fresh_events('dup two'), main::fresh_events('dup three'),
 main::fresh_chat('dup four'), ::cerr(400, 'stream must be a boolean')]



=== TEST 15: an escaped member name is the same name: "\u0073tream" and "str\u0065am" stream
--- request eval
[main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "esc one", "\\u0073tream": true}}),
 main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "esc two", "str\\u0065am": true}}),
 main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "esc three", "stream": true, "\\u0073tream": false}}),
 main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "esc four", "\\u0073tream": "yes"}}),
 main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "esc five", "\\u0053tream": true}})]
--- error_code eval
[200, 200, 201, 400, 400]
--- response_body eval
[main::fresh_events('esc one'), main::fresh_events('esc two'), main::fresh_chat('esc three'),
 ::cerr(400, 'stream must be a boolean'), ::cerr(400, 'property Stream should not exist')]



=== TEST 16: "stream" that is not a boolean: 400; "stream" elsewhere than at the top is not it
--- request eval
[(map { main::post(qq{{"assistantId": "$main::ECHO", "input": "x", "stream": $_}}) }
      '"yes"', '"true"', '1', '0', '[true]', '{}'),
 main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "nested", "metadata": {"stream": true}}}),
 main::post(qq{{"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "\\"stream\\": true, \\"stream\\": true"}})]
--- error_code eval
[(400) x 6, 201, 201]
--- response_body eval
my @ctx = (@main::SYS, [user => 'nested']);
my $e = ::echo(@ctx);
[(map { ::cerr(400, 'stream must be a boolean') } 1 .. 6),
 ::whole(::chat(input => 'nested', name => 'j150-fresh', assistantId => $main::ECHO,
                metadata => { stream => \'true' }, messages => \@ctx,
                output => [[assistant => $e]], usage => ::usage(\@ctx, $e))),
 main::fresh_chat('"stream": true, "stream": true')]



=== TEST 17: line and column of a fault in a body of several lines (LF and CRLF), at its end, in a string
--- request eval
["POST /chat\n{\"assistantId\": \"$main::ECHO\",\n \"name\": \"j150-lines\",\n \"input\": \"x\",\n \"stream\": tru}",
 "POST /chat\n{\"assistantId\": \"$main::ECHO\",\r\n \"input\": \"x\",\r\n  \"stream\": fals}",
 "POST /chat\n{\"assistantId\": \"$main::ECHO\",\n \"input\": \"x\"",
 "POST /chat\n{\"assistantId\": \"$main::ECHO\",\n\n \"input\": \"two\nlines\"}",
 "POST /chat\n{\"assistantId\": \"$main::ECHO\",\n \"input\": \"x\",\n \"name\" \"j150\"}"]
--- error_code eval
[(400) x 5]
--- response_body eval
[::cerr(400, 'body is not valid JSON: invalid token (line 4, column 12)'),
 ::cerr(400, 'body is not valid JSON: invalid token (line 3, column 13)'),
 ::cerr(400, 'body is not valid JSON: \',\' or \'}\' expected (line 2, column 14)'),
 ::cerr(400, 'body is not valid JSON: control character in a string (line 3, column 15)'),
 ::cerr(400, 'body is not valid JSON: \':\' expected (line 3, column 9)')]



=== TEST 18: other faults in strings: an unknown escape, a short or bad \u escape, an unterminated string
--- request eval
[map { main::post(qq({"assistantId": "$main::ECHO", "input": "$_->[0])) } @main::STRING_FAULTS]
--- error_code eval
[(400) x 6]
--- response_body eval
[map { my $b = qq({"assistantId": "$main::ECHO", "input": "$_->[0]);
       main::bad_at($b, $_->[1], $_->[2] eq 'end' ? length($b)
                                 : index($b, '"input": "') + 10 + $_->[2]) }
     @main::STRING_FAULTS]



=== TEST 19: "stream" after strings that end in escaped backslashes and quotes is still found
--- request eval
[main::post(qq({"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "back\\\\", "stream": true})),
 main::post(qq({"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "q\\\\\\"", "stream": true})),
 main::post(qq({"assistantId": "$main::ECHO", "name": "j150-fresh", "input": "\\\\\\\\", "metadata": {"a\\\\": "\\""}, "stream": true}))]
--- error_code eval
[200, 200, 200]
--- response_body eval
[main::fresh_events("back\\"), main::fresh_events("q\\\""), main::fresh_events("\\\\")]



=== TEST 20: a streamed reply in escapes (ensure_ascii): each delta is the model's escaped text, verbatim
--- request eval
main::post(qq({"sessionId": "$main::S_PARROT", "stream": true, "input": ) . ::cjson($main::TEXT) . '}')
--- error_code: 200
--- response_headers
Content-Type: text/event-stream
--- response_body eval
main::raw_events($main::S_PARROT, map { main::py_ascii($_) } ::pieces($main::TEXT))



=== TEST 21: ... recorded decoded (e-acute, an emoji, quotes, a backslash, a newline, a tab), with its usage
--- request eval
["GET /session/$main::S_PARROT", "GET /chat?sessionId=$main::S_PARROT&sortOrder=ASC"]
--- response_body eval
[main::session_of($main::S_PARROT, [user => $main::TEXT], [assistant => $main::TEXT]),
 main::session_chats($main::S_PARROT, [$main::TEXT, $main::TEXT])]



=== TEST 22: a reply in escapes, not streamed: 201 with the text decoded; the next context carries it
--- request eval
[main::post(qq({"sessionId": "$main::S_PARROT", "input": ) . ::cjson($main::TEXT2) . '}'),
 "GET /_mock/requests?n=1",
 "GET /session/$main::S_PARROT"]
--- error_code eval
[201, 200, 200]
--- response_body eval
my @ctx = (@main::SYS, [user => $main::TEXT], [assistant => $main::TEXT], [user => $main::TEXT2]);
[::whole(::chat(input => $main::TEXT2, sessionId => $main::S_PARROT, assistantId => $main::PARROT,
                messages => \@ctx, output => [[assistant => $main::TEXT2]],
                usage => ::usage(\@ctx, $main::TEXT2))),
 ::mock_requests(::upstream(model => 'parrot+ascii', messages => [@main::SYS,
     [user => $main::TEXT], [assistant => $main::TEXT], [user => $main::TEXT2]])),
 main::session_of($main::S_PARROT, [user => $main::TEXT], [assistant => $main::TEXT],
                  [user => $main::TEXT2], [assistant => $main::TEXT2])]



=== TEST 23: /chat/responses: the Response's text is the model's escaped text, spliced as it came
--- request eval
["POST /chat/responses\n{\"assistantId\": \"$main::RESP\", \"name\": \"j150-resp\", \"stream\": false, \"input\": "
  . ::cjson($main::TEXT) . '}',
 "GET /chat?assistantId=$main::RESP"]
--- error_code eval
[200, 200]
--- response_body eval
my @ctx = (@main::SYS, [user => $main::TEXT]);
my $u = ::usage(\@ctx, $main::TEXT);
[::whole(quotemeta('{"id":"resp_') . '[0-9a-f-]{36}'
         . quotemeta('","object":"response","created_at":') . '\d+'
         . quotemeta(',"status":"completed","error":null,"model":"parrot+ascii","output":[{"id":"msg_')
         . '[0-9a-f-]{36}'
         . quotemeta('","type":"message","role":"assistant","status":"completed",'
                     . '"content":[{"type":"output_text","text":"' . main::py_ascii($main::TEXT)
                     . '","annotations":[]}]}],"usage":{"input_tokens":' . ${ $u->{promptTokens} }
                     . ',"output_tokens":' . ${ $u->{completionTokens} } . '}}')),
 ::chat_list([::chat(input => $main::TEXT, name => 'j150-resp', assistantId => $main::RESP,
                     messages => \@ctx, output => [[assistant => $main::TEXT]], usage => $u)])]



=== TEST 24: /chat/responses streamed: each delta and the done text are the model's escaped texts
--- request eval
["POST /chat/responses\n{\"assistantId\": \"$main::RESP\", \"name\": \"j150-resp\", \"input\": "
  . ::cjson($main::TEXT2) . '}',
 "GET /chat?assistantId=$main::RESP&sortOrder=ASC"]
--- error_code eval
[200, 200]
--- response_body eval
my @ctx = (@main::SYS, [user => $main::TEXT]);
my @ctx2 = (@main::SYS, [user => $main::TEXT2]);
my $u = ::usage(\@ctx2, $main::TEXT2);
[main::responses_raw_events('parrot+ascii', ${ $u->{promptTokens} }, ${ $u->{completionTokens} },
                            map { main::py_ascii($_) } ::pieces($main::TEXT2)),
 ::chat_list([::chat(input => $main::TEXT, name => 'j150-resp', assistantId => $main::RESP,
                     messages => \@ctx, output => [[assistant => $main::TEXT]],
                     usage => ::usage(\@ctx, $main::TEXT)),
              ::chat(input => $main::TEXT2, name => 'j150-resp', assistantId => $main::RESP,
                     messages => \@ctx2, output => [[assistant => $main::TEXT2]], usage => $u)],
             sortOrder => 'ASC')]



=== TEST 25: echo in escapes: a reply that is itself JSON (escaped quotes, backslashes) streams verbatim
--- request eval
[main::post(qq({"sessionId": "$main::S_ECHO", "stream": true, "input": ) . ::cjson($main::TEXT) . '}'),
 "GET /session/$main::S_ECHO"]
--- response_body eval
my $e = ::echo(@main::SYS, [user => $main::TEXT]);
[main::raw_events($main::S_ECHO, map { main::py_ascii($_) } ::pieces($e)),
 main::session_of($main::S_ECHO, [user => $main::TEXT], [assistant => $e])]



=== TEST 26: replies with whitespace in their JSON (", ", ": ", an indented body): the same text and usage
--- request eval
[main::post(qq({"sessionId": "$main::S_PRETTY", "stream": true, "input": ) . ::cjson($main::TEXT) . '}'),
 main::post(qq({"sessionId": "$main::S_PRETTY", "input": ) . ::cjson($main::TEXT2) . '}'),
 "GET /chat?sessionId=$main::S_PRETTY&sortOrder=ASC"]
--- error_code eval
[200, 201, 200]
--- response_body eval
my @ctx = (@main::SYS, [user => $main::TEXT], [assistant => $main::TEXT], [user => $main::TEXT2]);
[main::raw_events($main::S_PRETTY, map { main::py_raw($_) } ::pieces($main::TEXT)),
 ::whole(::chat(input => $main::TEXT2, sessionId => $main::S_PRETTY, assistantId => $main::PRETTY,
                messages => \@ctx, output => [[assistant => $main::TEXT2]],
                usage => ::usage(\@ctx, $main::TEXT2))),
 main::session_chats($main::S_PRETTY, [$main::TEXT, $main::TEXT], [$main::TEXT2, $main::TEXT2])]



=== TEST 27: a stream in escapes cut after 3 deltas: those go out; the warning counts the decoded bytes
--- request eval
main::post(qq({"sessionId": "$main::S_CUT", "stream": true, "input": ) . ::cjson($main::TEXT) . '}')
--- response_body eval
main::raw_events($main::S_CUT, map { main::py_ascii($_) } (::pieces($main::TEXT))[0 .. 2])
--- error_log eval
my $n = length(CORE::join '', (::pieces($main::TEXT))[0 .. 2]);
[qr/\[error\] .*upstream prematurely closed connection/,
 qr/\[warn\] .*callhq: model stream for chat [0-9a-f-]{36} ended early, recording $n bytes as incomplete/]
--- no_error_log
[crit]
[alert]



=== TEST 28: ... recorded incomplete, decoded, as far as it came
--- request eval
["GET /chat?sessionId=$main::S_CUT&sortOrder=ASC", "GET /session/$main::S_CUT"]
--- response_body eval
my $part = CORE::join '', (::pieces($main::TEXT))[0 .. 2];
[main::session_chats($main::S_CUT, [$main::TEXT, $part, 'incomplete']),
 main::session_of($main::S_CUT, [user => $main::TEXT], [assistant => $part])]



=== TEST 29: an event with a raw 0xFF byte is skipped with a warning; every other delta goes out, the reply is recorded whole
--- request eval
main::bad_chunk_requests(1)
--- response_body eval
main::bad_chunk_bodies(1)
--- error_log eval
main::bad_chunk_warn(1)



=== TEST 30: an event with the overlong UTF-8 C0 AF is skipped with a warning; every other delta goes out, the reply is recorded whole
--- request eval
main::bad_chunk_requests(2)
--- response_body eval
main::bad_chunk_bodies(2)
--- error_log eval
main::bad_chunk_warn(2)



=== TEST 31: an event with a UTF-8-encoded surrogate (ED A0 80) is skipped with a warning; every other delta goes out, the reply is recorded whole
--- request eval
main::bad_chunk_requests(3)
--- response_body eval
main::bad_chunk_bodies(3)
--- error_log eval
main::bad_chunk_warn(3)



=== TEST 32: an event with a lone \ud83d escape is skipped with a warning; every other delta goes out, the reply is recorded whole
--- request eval
main::bad_chunk_requests(4)
--- response_body eval
main::bad_chunk_bodies(4)
--- error_log eval
main::bad_chunk_warn(4)



=== TEST 33: an event with a lone \ude00 escape is skipped with a warning; every other delta goes out, the reply is recorded whole
--- request eval
main::bad_chunk_requests(5)
--- response_body eval
main::bad_chunk_bodies(5)
--- error_log eval
main::bad_chunk_warn(5)



=== TEST 34: an event with \u0000 is skipped with a warning; every other delta goes out, the reply is recorded whole
--- request eval
main::bad_chunk_requests(6)
--- response_body eval
main::bad_chunk_bodies(6)
--- error_log eval
main::bad_chunk_warn(6)



=== TEST 35: an event with a "}" after its object is skipped with a warning; every other delta goes out, the reply is recorded whole
--- request eval
main::bad_chunk_requests(7)
--- response_body eval
main::bad_chunk_bodies(7)
--- error_log eval
main::bad_chunk_warn(7)



=== TEST 36: a reply not streamed that is not JSON (a raw 0xFF byte): 502, nothing recorded
--- request eval
[main::post(qq({"sessionId": "$main::S_NOSTREAM", "input": ) . ::cjson($main::TEXT) . '}'),
 "GET /session/$main::S_NOSTREAM",
 "GET /chat?sessionId=$main::S_NOSTREAM"]
--- error_code eval
[502, 200, 200]
--- response_body eval
[::cerr(502, 'model upstream gave no reply'), main::session_of($main::S_NOSTREAM), ::chat_list([])]
--- error_log eval
[qr/\[error\] .*callhq: model reply is not JSON: invalid UTF-8(?: while |,|$)/,
 qr/\[error\] .*callhq: model failed for chat [0-9a-f-]{36} with status 200(?: while |,|$)/]
--- no_error_log
[crit]
[alert]



=== TEST 37: ... with \u0000 in its text, a chat without a session: 502, no chat recorded
--- request eval
main::post(qq{{"assistantId": "@{[ main::id('26') ]}", "name": "j150-bad-nostream", "input": "x"}})
--- error_code: 502
--- response_body eval
::cerr(502, 'model upstream gave no reply')
--- error_log eval
[qr/\[error\] .*callhq: model reply is not JSON: \\u0000 is not allowed(?: while |,|$)/]
--- no_error_log
[crit]
[alert]
