# Streamed chats: POST /chat with "stream": true answers with server-sent
# events, one per delta of the model's stream, and records the reply once
# the stream ends; a stream cut by the model is recorded as far as it came,
# as "incomplete". POST /chat/responses answers in the OpenAI Responses
# shape, streamed unless told otherwise.
#
# The mock streams a reply in pieces of at most 8 characters cut at word
# boundaries (::pieces), so the exact events are known in advance; its
# "split" modifier writes the stream in tiny TCP segments, so that events,
# chunk headers and UTF-8 sequences straddle reads.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

our $CONFIG = api_location('/') . model_locations();

callhq_defaults(config => $CONFIG, accum_error_log => 1,
                valgrind_timeout => 10);

# Ids 11000000-0000-4000-8000-0000000000NN; chats without a session are
# named "c110-...".
#   01  c110-echo (echo, SYS-110)        02  c110-split (echo+split)
#   03  c110-cut (echo+cut-after-3)      04  c110-recall (recall, SYS-110-R)
#   11  session for two streamed turns   12  session on the split model
#   13  the same chat without split      14  session on the cut model
#   15  session for the Responses API
psql(q{
    delete from callhq.chats
     where name like 'c110-%' or assistant_id::text like '11000000-0000-4000-8000-%';
    delete from callhq.sessions
     where id::text like '11000000-0000-4000-8000-%'
        or assistant_id::text like '11000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '11000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select v.id::uuid, k.org_id, v.name, m.model,
           '2011-01-01T00:00:00Z', '2011-01-01T00:00:00Z'
      from callhq.api_keys k,
           (values
            ('11000000-0000-4000-8000-000000000001', 'c110-echo', 'echo', 'SYS-110'),
            ('11000000-0000-4000-8000-000000000002', 'c110-split', 'echo+split', 'SYS-110'),
            ('11000000-0000-4000-8000-000000000003', 'c110-cut', 'echo+cut-after-3', 'SYS-110'),
            ('11000000-0000-4000-8000-000000000004', 'c110-recall', 'recall', 'SYS-110-R'))
           v(id, name, model_name, prompt),
           lateral (select jsonb_build_object('provider', 'openai', 'model', v.model_name,
                       'messages', jsonb_build_array(jsonb_build_object(
                           'role', 'system', 'content', v.prompt))) as model) m
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, created_at, updated_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.name, 86400,
           '2099-01-01T00:00:00Z', '2011-02-01T00:00:00Z', '2011-02-01T00:00:00Z'
      from callhq.api_keys k,
           (values
            ('11000000-0000-4000-8000-000000000011', '11000000-0000-4000-8000-000000000001', 'c110-stream'),
            ('11000000-0000-4000-8000-000000000012', '11000000-0000-4000-8000-000000000002', 'c110-split'),
            ('11000000-0000-4000-8000-000000000013', '11000000-0000-4000-8000-000000000001', 'c110-nosplit'),
            ('11000000-0000-4000-8000-000000000014', '11000000-0000-4000-8000-000000000003', 'c110-cut'),
            ('11000000-0000-4000-8000-000000000015', '11000000-0000-4000-8000-000000000004', 'c110-responses'))
           v(id, assistant_id, name)
     where k.key_hash = sha256('cq_test_a');
});

sub id { sprintf '11000000-0000-4000-8000-0000000000%s', shift }

our ($ECHO, $SPLIT, $CUT, $RECALL) = map { id($_) } qw(01 02 03 04);
our ($STREAM, $SPLIT_SESS, $NOSPLIT, $CUT_SESS, $RESP) = map { id($_) } 11 .. 15;

our @SYS = ([system => 'SYS-110']);

# Two streamed turns on session 11.
our @T1 = (@SYS, [user => 'stream me']);
our $E1 = ::echo(@T1);
our @T2 = (@T1, [assistant => $E1], [user => 'and again']);
our $E2 = ::echo(@T2);

# A text that is hard to frame: UTF-8 (two and three byte sequences), quotes,
# and what would be an event separator and the end of the stream were it not
# JSON-escaped.
our $TRICKY = "na\xc3\xafve caf\xc3\xa9 \xe2\x98\x95 \"quoted\" line\n\ndata: [DONE]\n\nend";
our @TT = (@SYS, [user => $TRICKY]);
our $ET = ::echo(@TT);

sub session_of {
    my ($id, $name, $asst, @msgs) = @_;
    return ::session_body({ id => $id, orgId => $::ORG_A, name => $name,
        status => 'active', assistantId => $asst, expirationSeconds => \86400,
        expiresAt => '2099-01-01T00:00:00.000Z',
        createdAt => '2011-02-01T00:00:00.000Z', updatedAt => $::TS }, @msgs);
}

sub post {
    my ($body) = @_;
    return "POST /chat\n$body";
}

# The OpenAI Responses event stream of one reply: response.created, a
# response.output_text.delta per piece, response.output_text.done,
# response.completed; the ids are resp_<chat id> and msg_<chat id>.
sub responses_events {
    my ($model, $text, $in, $out, $status, @deltas) = @_;
    $status //= 'completed';
    @deltas = ::pieces($text) unless @deltas;
    my $chat = '(?<c>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
    my $ev = sub {
        my ($type, $data) = @_;
        return quotemeta("event: $type\ndata: ") . $data . quotemeta("\n\n");
    };
    my $q = sub { quotemeta join '', @_ };
    my $item = $q->('"item_id":"msg_') . '\k<c>'
               . $q->('","output_index":0,"content_index":0,');
    my $src = $ev->('response.created',
        $q->('{"type":"response.created","response":{"id":"resp_') . $chat
        . $q->('","object":"response","created_at":') . '\d+'
        . $q->(',"status":"in_progress","error":null,"model":', ::cjson($model),
               ',"output":[],"usage":{"input_tokens":0,"output_tokens":0}}}'));
    $src .= $ev->('response.output_text.delta',
        $q->('{"type":"response.output_text.delta",') . $item
        . $q->('"delta":', ::cjson($_), '}')) for @deltas;
    $src .= $ev->('response.output_text.done',
        $q->('{"type":"response.output_text.done",') . $item
        . $q->('"text":', ::cjson($text), '}'));
    # the last event: an incomplete response may be announced by
    # response.completed or (as OpenAI does) by response.incomplete
    my $last = $status eq 'completed' ? 'response\.completed'
                                      : 'response\.(?<last>completed|incomplete)';
    $src .= 'event: ' . $last . quotemeta("\ndata: ")
        . $q->('{"type":"response.') . ($status eq 'completed' ? 'completed' : '\k<last>')
        . $q->('","response":{"id":"resp_') . '\k<c>'
        . $q->('","object":"response","created_at":') . '\d+'
        . $q->(qq{,"status":"$status","error":null,"model":}, ::cjson($model),
               ',"output":[{"id":"msg_') . '\k<c>'
        . $q->(qq{","type":"message","role":"assistant","status":"$status",}
               . '"content":[{"type":"output_text","text":', ::cjson($text),
               ',"annotations":[]}]}],"usage":{"input_tokens":', $in,
               ',"output_tokens":', $out, '}}}') . quotemeta("\n\n");
    return ::whole($src);
}

# A reply of some 2.5 kB: more than the 1k proxy buffers of TEST 13.
our $WORDS = join ' ', map { sprintf 'w%03d', $_ } 1 .. 400;

# The recall model's first two answers on session 15.
our @R1 = ([system => 'SYS-110-R'], [user => 'my name is Ann']);
our $RE1 = "Nice to meet you, Ann! I'll remember that. (turn 1)";
our @R2 = (@R1, [assistant => $RE1], [user => 'what is my name?']);
our $RE2 = 'Your name is Ann.';

run_tests();

__DATA__

=== TEST 1: stream: text/event-stream, one event per delta, all of one chat and session
--- request eval
[main::post(qq{{"sessionId": "$main::STREAM", "input": "stream me", "stream": true}}),
 "GET /session/$main::STREAM"]
--- error_code eval
[200, 200]
--- response_headers eval
["Content-Type: text/event-stream\nCache-Control: no-cache\nX-Accel-Buffering: no\n!Content-Length",
 "Content-Type: application/json"]
--- response_body eval
[::chat_events($main::STREAM, ::pieces($main::E1)),
 main::session_of($main::STREAM, 'c110-stream', $main::ECHO,
     [user => 'stream me'], [assistant => $main::E1])]



=== TEST 2: second streamed turn: the first one is in its context; both recorded once, with usage
--- request eval
[main::post(qq{{"sessionId": "$main::STREAM", "input": "and again", "stream": true}}),
 "GET /session/$main::STREAM",
 "GET /chat?sessionId=$main::STREAM&sortOrder=ASC",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[::chat_events($main::STREAM, ::pieces($main::E2)),
 main::session_of($main::STREAM, 'c110-stream', $main::ECHO,
     [user => 'stream me'], [assistant => $main::E1],
     [user => 'and again'], [assistant => $main::E2]),
 ::chat_list([
     ::chat(input => 'stream me', sessionId => $main::STREAM, assistantId => $main::ECHO,
            messages => \@main::T1, output => [[assistant => $main::E1]],
            usage => ::usage(\@main::T1, $main::E1)),
     ::chat(input => 'and again', sessionId => $main::STREAM, assistantId => $main::ECHO,
            messages => \@main::T2, output => [[assistant => $main::E2]],
            usage => ::usage(\@main::T2, $main::E2))], sortOrder => 'ASC'),
 ::mock_requests(::upstream(model => 'echo', messages => \@main::T2, stream => 1))]



=== TEST 3: a stream written in tiny TCP segments: UTF-8, quotes, "\n\ndata: [DONE]" in the text
--- request eval
[main::post("{\"sessionId\": \"$main::SPLIT_SESS\", \"stream\": true, \"input\": "
            . ::cjson($main::TRICKY) . '}'),
 "GET /session/$main::SPLIT_SESS",
 "GET /chat?sessionId=$main::SPLIT_SESS"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::chat_events($main::SPLIT_SESS, ::pieces($main::ET)),
 main::session_of($main::SPLIT_SESS, 'c110-split', $main::SPLIT,
     [user => $main::TRICKY], [assistant => $main::ET]),
 ::chat_list([::chat(input => $main::TRICKY, sessionId => $main::SPLIT_SESS,
                     assistantId => $main::SPLIT, messages => \@main::TT,
                     output => [[assistant => $main::ET]],
                     usage => ::usage(\@main::TT, $main::ET))])]



=== TEST 4: the same chat without split: the very same events and record
--- request eval
[main::post("{\"sessionId\": \"$main::NOSPLIT\", \"stream\": true, \"input\": "
            . ::cjson($main::TRICKY) . '}'),
 "GET /session/$main::NOSPLIT"]
--- error_code eval
[200, 200]
--- response_body eval
[::chat_events($main::NOSPLIT, ::pieces($main::ET)),
 main::session_of($main::NOSPLIT, 'c110-nosplit', $main::ECHO,
     [user => $main::TRICKY], [assistant => $main::ET])]



=== TEST 5: a chat without a session streams with "sessionId": null
--- request eval
main::post(qq{{"assistantId": "$main::ECHO", "input": "no session", "stream": true, "name": "c110-fresh"}})
--- response_headers
Content-Type: text/event-stream
--- response_body eval
::chat_events(undef, ::pieces(::echo(@main::SYS, [user => 'no session'])))



=== TEST 6: "stream": false: a 201 Chat, the same text whole
--- request eval
main::post("{\"assistantId\": \"$main::ECHO\", \"stream\": false, \"name\": \"c110-nostream\", \"input\": "
           . ::cjson($main::TRICKY) . '}')
--- error_code: 201
--- response_headers
Content-Type: application/json
--- response_body eval
::whole(::chat(input => $main::TRICKY, name => 'c110-nostream', assistantId => $main::ECHO,
               messages => \@main::TT, output => [[assistant => $main::ET]],
               usage => ::usage(\@main::TT, $main::ET)))



=== TEST 7: the model cuts its stream after 3 deltas: the client gets them, the stream ends
--- request eval
main::post(qq{{"sessionId": "$main::CUT_SESS", "input": "cut me short", "stream": true}})
--- response_headers
Content-Type: text/event-stream
--- response_body eval
::chat_events($main::CUT_SESS,
              (::pieces(::echo(@main::SYS, [user => 'cut me short'])))[0 .. 2])
--- error_log eval
[qr/\[error\] .*upstream prematurely closed connection/,
 qr/\[warn\] .*callhq: model stream for chat [0-9a-f-]{36} ended early, recording 24 bytes as incomplete/]
--- no_error_log
[crit]
[alert]



=== TEST 8: ... the chat is recorded once, "incomplete", with what arrived; the user turn once
--- request eval
["GET /chat?sessionId=$main::CUT_SESS",
 "GET /session/$main::CUT_SESS"]
--- response_body eval
my @ctx = (@main::SYS, [user => 'cut me short']);
my $part = CORE::join '', (::pieces(::echo(@ctx)))[0 .. 2];
[::chat_list([::chat(input => 'cut me short', sessionId => $main::CUT_SESS,
                     assistantId => $main::CUT, status => 'incomplete',
                     messages => \@ctx, output => [[assistant => $part]])]),
 main::session_of($main::CUT_SESS, 'c110-cut', $main::CUT,
     [user => 'cut me short'], [assistant => $part])]



=== TEST 9: POST /chat/responses streams by default: created, deltas, done, completed, in order
--- request eval
["POST /chat/responses\n{\"sessionId\": \"$main::RESP\", \"input\": \"my name is Ann\"}",
 "GET /session/$main::RESP"]
--- error_code eval
[200, 200]
--- response_headers eval
["Content-Type: text/event-stream", "Content-Type: application/json"]
--- response_body eval
[main::responses_events('recall', $main::RE1, ::words('SYS-110-R my name is Ann'),
                        ::words($main::RE1)),
 main::session_of($main::RESP, 'c110-responses', $main::RECALL,
     [user => 'my name is Ann'], [assistant => $main::RE1])]



=== TEST 10: POST /chat/responses with "stream": false: one Response object, status completed
--- request eval
["POST /chat/responses\n{\"sessionId\": \"$main::RESP\", \"input\": \"what is my name?\", \"stream\": false}",
 "GET /session/$main::RESP"]
--- error_code eval
[200, 200]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json"]
--- response_body eval
my $usage = ::usage(\@main::R2, $main::RE2);
[::whole(quotemeta('{"id":"resp_') . '(?<c>[0-9a-f-]{36})'
         . quotemeta('","object":"response","created_at":') . '\d+'
         . quotemeta(',"status":"completed","error":null,"model":"recall",'
                     . '"output":[{"id":"msg_') . '\k<c>'
         . quotemeta('","type":"message","role":"assistant","status":"completed",'
                     . '"content":[{"type":"output_text","text":"Your name is Ann.",'
                     . '"annotations":[]}]}],"usage":{"input_tokens":'
                     . ${ $usage->{promptTokens} } . ',"output_tokens":'
                     . ${ $usage->{completionTokens} } . '}}')),
 main::session_of($main::RESP, 'c110-responses', $main::RECALL,
     [user => 'my name is Ann'], [assistant => $main::RE1],
     [user => 'what is my name?'], [assistant => $main::RE2])]



=== TEST 11: the Responses chats are chats: GET /chat lists them, recorded as usual
--- request eval
"GET /chat?sessionId=$main::RESP&sortOrder=ASC"
--- response_body eval
::chat_list([
    ::chat(input => 'my name is Ann', sessionId => $main::RESP, assistantId => $main::RECALL,
           messages => \@main::R1, output => [[assistant => $main::RE1]],
           usage => ::usage(\@main::R1, $main::RE1)),
    ::chat(input => 'what is my name?', sessionId => $main::RESP, assistantId => $main::RECALL,
           messages => \@main::R2, output => [[assistant => $main::RE2]],
           usage => ::usage(\@main::R2, $main::RE2))], sortOrder => 'ASC')



=== TEST 12: /chat/responses, the model cuts its stream: the events so far, done, then incomplete
--- request eval
["POST /chat/responses\n{\"assistantId\": \"$main::CUT\", \"input\": \"cut this one\", \"name\": \"c110-resp-cut\"}",
 "GET /chat?assistantId=$main::CUT"]
--- response_body eval
my @ctx = (@main::SYS, [user => 'cut this one']);
my @p = (::pieces(::echo(@ctx)))[0 .. 2];
[main::responses_events('echo+cut-after-3', CORE::join('', @p), 0, 0, 'incomplete', @p),
 ::chat_list([::chat(input => 'cut this one', name => 'c110-resp-cut', assistantId => $main::CUT,
                     status => 'incomplete', messages => \@ctx,
                     output => [[assistant => CORE::join('', @p)]]),
              ::chat(input => 'cut me short', sessionId => $main::CUT_SESS,
                     assistantId => $main::CUT, status => 'incomplete',
                     messages => [@main::SYS, [user => 'cut me short']],
                     output => [[assistant => CORE::join('', (::pieces(::echo(@main::SYS,
                         [user => 'cut me short'])))[0 .. 2])]])])]
--- error_log eval
[qr/\[warn\] .*callhq: model stream for chat [0-9a-f-]{36} ended early/]
--- no_error_log
[crit]
[alert]



=== TEST 13: the model location buffers (proxy_buffering on, 1k buffers, temp files): same replies
--- config eval
$main::CONFIG =~ s/proxy_buffering off;/proxy_buffering on; proxy_buffers 2 1k; proxy_buffer_size 1k; proxy_busy_buffers_size 1k; proxy_temp_file_write_size 1k;/r
--- request eval
["POST /chat\n{\"assistantId\": \"$main::ECHO\", \"input\": \"$main::WORDS\", \"name\": \"c110-buffered\"}",
 "POST /chat\n{\"assistantId\": \"$main::ECHO\", \"input\": \"$main::WORDS\", \"name\": \"c110-buffered\", \"stream\": true}"]
--- error_code eval
[201, 200]
--- response_body eval
my @ctx = (@main::SYS, [user => $main::WORDS]);
my $e = ::echo(@ctx);
[::whole(::chat(input => $main::WORDS, name => 'c110-buffered', assistantId => $main::ECHO,
                messages => \@ctx, output => [[assistant => $e]],
                usage => ::usage(\@ctx, $e))),
 ::chat_events(undef, ::pieces($e))]



=== TEST 14: POST /chat/<anything else>: 404; "stream" that is not a boolean: 400
--- request eval
["POST /chat/other\n{\"assistantId\": \"$main::ECHO\", \"input\": \"x\"}",
 "POST /chat/responses\n{\"assistantId\": \"$main::ECHO\", \"input\": \"x\", \"stream\": 1}"]
--- error_code eval
[404, 400]
--- response_body eval
[::cerr(404, 'Cannot POST /chat/other'),
 ::cerr(400, 'stream must be a boolean')]
