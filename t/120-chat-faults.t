# The model upstream failing, and the client leaving: a model that fails
# before any output (an error status, a time-out, a refused connection, a
# reply cut short or too large) answers 502/504 in JSON and records nothing:
# no chat, the session's history as it was, its turn given back. A stream
# the model cuts is recorded as far as it came, "incomplete"; so is a
# stream the client leaves; a chat the client leaves before any output
# records nothing (those models answer a second late, after the client
# left: a chat that went on regardless would be recorded by then).
#
# Every session here starts with the same two messages; the last block
# switches their assistants to "echo" and chats once more on each with
# callhq_turn_timeout 0 (a turn still held answers 409 at once): the
# answers show each session's history and that its turn is free.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

our $CONFIG = api_location('/') . model_locations();

callhq_defaults(config => $CONFIG, accum_error_log => 1,
                valgrind_timeout => 10);

# Ids 12000000-0000-4000-8000-0000000000NN: assistant NN (system prompt
# SYS-120, the model below) and its session 1N, history "before", "kept".
our %MODEL = ('01' => 'echo+fail-500',       '02' => 'echo+fail-503',
              '03' => 'echo+fail-429',       '04' => 'echo+slow-3000',
              '05' => 'echo+cut-after-1',    '06' => 'echo+reset-after-2',
              '07' => 'recall+slowstream-3000', '08' => 'echo',
              '09' => 'echo+fail-504',       '0a' => 'echo',
              '0b' => 'echo+slow-1000',      '0c' => 'echo+slow-1000');

psql(q{
    delete from callhq.sessions where id::text like '12000000-0000-4000-8000-%';
    delete from callhq.chats where assistant_id::text like '12000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '12000000-0000-4000-8000-%';
} . join('', map { qq{
    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select '12000000-0000-4000-8000-0000000000$_', k.org_id, 'c120-$_',
           '{"provider": "openai", "model": "$MODEL{$_}",
             "messages": [{"role": "system", "content": "SYS-120"}]}',
           '2012-01-01T00:00:00Z', '2012-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, next_seq, created_at, updated_at)
    select '12000000-0000-4000-8000-0000000000@{[ sess_of($_) ]}', k.org_id,
           '12000000-0000-4000-8000-0000000000$_', 'c120-$_', 86400,
           '2099-01-01T00:00:00Z', 3, '2012-02-01T00:00:00Z', '2012-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
    select callhq.messages_insert('12000000-0000-4000-8000-0000000000@{[ sess_of($_) ]}',
        '[{"role": "user", "content": "before"}, {"role": "assistant", "content": "kept"}]', 1);
} } sort keys %MODEL));

sub sess_of { my $n = shift; return '1' . substr($n, 1) }
sub asst { sprintf '12000000-0000-4000-8000-0000000000%s', shift }
sub sess { asst(sess_of(shift)) }

our @SEED = ([user => 'before'], [assistant => 'kept']);
our @SYS = ([system => 'SYS-120']);

sub post {
    my ($n, $input, $more) = @_;
    my $s = sess($n);
    return "POST /chat\n{\"sessionId\": \"$s\", \"input\": \"$input\""
           . ($more ? ", $more" : '') . '}';
}

# GET /session/{id} of session n, with its history.
sub session_of {
    my ($n, @more) = @_;
    return ::session_body({ id => sess($n), orgId => $::ORG_A, name => "c120-$n",
        status => 'active', assistantId => asst($n), expirationSeconds => \86400,
        expiresAt => '2099-01-01T00:00:00.000Z',
        createdAt => '2012-02-01T00:00:00.000Z', updatedAt => $::TS }, @SEED, @more);
}

# The same, untouched since the fixture.
sub untouched {
    my $n = shift;
    return ::session_body({ id => sess($n), orgId => $::ORG_A, name => "c120-$n",
        status => 'active', assistantId => asst($n), expirationSeconds => \86400,
        expiresAt => '2099-01-01T00:00:00.000Z',
        createdAt => '2012-02-01T00:00:00.000Z',
        updatedAt => '2012-02-01T00:00:00.000Z' }, @SEED);
}

# A failed chat: its answer, then the session's history and chats unchanged.
sub nothing_recorded {
    my ($n, $status, $message) = @_;
    return (::cerr($status, $message), untouched($n), ::chat_list([]));
}

sub failed_requests {
    my ($n, $input, $more) = @_;
    my $s = sess($n);
    return [post($n, $input, $more), "GET /session/$s", "GET /chat?sessionId=$s"];
}

our $MODEL_FAILED = qr/\[error\] .*callhq: model failed for chat [0-9a-f-]{36} with status/;

# The recall model's answer to "abort me please", and the replies that are
# a part of it: one or more of its deltas, not all.
our $ABORT_REPLY = 'You said: "abort me please" (turn 1)';
our @ABORT_PIECES = ::pieces($ABORT_REPLY);
our $ABORT_PART = '(?:' . join('|', map { quotemeta ::cjson(join '', @ABORT_PIECES[0 .. $_]) }
                                    reverse 0 .. $#ABORT_PIECES - 1) . ')';

# The chat of the last block on session n: the seed, what n recorded, "after".
sub after_chat {
    my ($n, @recorded) = @_;
    my @ctx = (@SYS, @SEED, @recorded, [user => 'after']);
    my $e = ::echo(@ctx);
    return ::whole(::chat(input => 'after', sessionId => sess($n), assistantId => asst($n),
                          messages => \@ctx, output => [[assistant => $e]],
                          usage => ::usage(\@ctx, $e)));
}

run_tests();

__DATA__

=== TEST 1: the model answers 500: 502 in JSON; no chat, the history as it was
--- request eval
main::failed_requests('01', 'fails')
--- error_code eval
[502, 200, 200]
--- response_headers eval
["Content-Type: application/json", "", ""]
--- response_body eval
[main::nothing_recorded('01', 502, 'model upstream answered 500')]
--- error_log eval
[qr/\[error\] .*callhq: model failed for chat [0-9a-f-]{36} with status 500/]
--- no_error_log
[crit]
[alert]



=== TEST 2: the same with "stream": true and on /chat/responses: a JSON 502, not an event stream
--- request eval
my $s = main::sess('01');
[main::post('01', 'fails', '"stream": true'),
 "POST /chat/responses\n{\"sessionId\": \"$s\", \"input\": \"fails\"}",
 "GET /session/$s", "GET /chat?sessionId=$s"]
--- error_code eval
[502, 502, 200, 200]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json", "", ""]
--- response_body eval
[::cerr(502, 'model upstream answered 500'), ::cerr(502, 'model upstream answered 500'),
 main::untouched('01'), ::chat_list([])]
--- error_log eval
[$main::MODEL_FAILED]
--- no_error_log
[crit]
[alert]



=== TEST 3: the model answers 503: 502
--- request eval
main::failed_requests('02', 'fails')
--- error_code eval
[502, 200, 200]
--- response_body eval
[main::nothing_recorded('02', 502, 'model upstream failed')]
--- error_log eval
[qr/\[error\] .*callhq: model failed for chat [0-9a-f-]{36} with status 503/]
--- no_error_log
[crit]
[alert]



=== TEST 4: the model answers 429: 502 naming it
--- request eval
main::failed_requests('03', 'fails')
--- error_code eval
[502, 200, 200]
--- response_body eval
[main::nothing_recorded('03', 502, 'model upstream answered 429')]
--- error_log eval
[qr/\[error\] .*callhq: model failed for chat [0-9a-f-]{36} with status 429/]
--- no_error_log
[crit]
[alert]



=== TEST 5: the model answers 504: 504
--- request eval
main::failed_requests('09', 'fails')
--- error_code eval
[504, 200, 200]
--- response_body eval
[main::nothing_recorded('09', 504, 'model upstream timed out')]
--- error_log eval
[qr/\[error\] .*callhq: model timed out for chat [0-9a-f-]{36}/]
--- no_error_log
[crit]
[alert]



=== TEST 6: the model is slower than proxy_read_timeout: 504, nothing recorded
--- config eval
$main::CONFIG =~ s/proxy_read_timeout 2s/proxy_read_timeout 1s/r
--- request eval
main::failed_requests('04', 'too slow')
--- error_code eval
[504, 200, 200]
--- response_body eval
[main::nothing_recorded('04', 504, 'model upstream timed out')]
--- error_log eval
[qr/\[error\] .*upstream timed out \(110: Connection timed out\) while reading response header from upstream/,
 qr/\[error\] .*callhq: model timed out for chat/]
--- no_error_log
[crit]
[alert]



=== TEST 7: the model's port is closed: 502, nothing recorded
--- config eval
$main::CONFIG =~ s{/_model;}{/_dead;}r . <<'_EOC_'
location = /_dead {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/v1/chat/completions;
}
_EOC_
--- request eval
main::failed_requests('0a', 'nobody home')
--- error_code eval
[502, 200, 200]
--- response_body eval
[main::nothing_recorded('0a', 502, 'model upstream failed')]
--- error_log eval
[qr/\[error\] .*connect\(\) failed \(111: Connection refused\) while connecting to upstream/,
 qr/with status 502/]
--- no_error_log
[crit]
[alert]



=== TEST 8: a reply cut in the middle of its JSON (not streamed): 502, nothing recorded
--- request eval
main::failed_requests('05', 'half a reply')
--- error_code eval
[502, 200, 200]
--- response_body eval
[main::nothing_recorded('05', 502, 'model upstream gave no reply')]
--- error_log eval
[qr/\[error\] .*upstream prematurely closed connection/,
 qr/\[error\] .*callhq: model reply is not JSON/]
--- no_error_log
[crit]
[alert]



=== TEST 9: a reply over callhq_max_reply_size: 502, nothing recorded
--- config eval
$main::CONFIG =~ s/callhq_api;/callhq_api; callhq_max_reply_size 64;/r
--- request eval
main::failed_requests('08', 'a reply too large for the limit')
--- error_code eval
[502, 200, 200]
--- response_body eval
[main::nothing_recorded('08', 502, 'model reply is too large')]
--- error_log eval
[qr/\[error\] .*callhq: model reply exceeds callhq_max_reply_size/]
--- no_error_log
[crit]
[alert]



=== TEST 10: the model resets its stream after 2 deltas: the client gets them
--- request eval
main::post('06', 'reset me', '"stream": true')
--- response_headers
Content-Type: text/event-stream
--- response_body eval
::chat_events(main::sess('06'),
              (::pieces(::echo(@main::SYS, @main::SEED, [user => 'reset me'])))[0, 1])
--- error_log eval
[qr/\[error\] .*recv\(\) failed \(104: Connection reset by peer\)/,
 qr/\[warn\] .*callhq: model stream for chat [0-9a-f-]{36} ended early, recording 16 bytes as incomplete/]
--- no_error_log
[crit]
[alert]



=== TEST 11: ... recorded once, "incomplete", as far as it came
--- request eval
my $s = main::sess('06');
["GET /chat?sessionId=$s", "GET /session/$s"]
--- response_body eval
my @ctx = (@main::SYS, @main::SEED, [user => 'reset me']);
my $part = CORE::join '', (::pieces(::echo(@ctx)))[0, 1];
[::chat_list([::chat(input => 'reset me', sessionId => main::sess('06'),
                     assistantId => main::asst('06'), status => 'incomplete',
                     messages => \@ctx, output => [[assistant => $part]])]),
 main::session_of('06', [user => 'reset me'], [assistant => $part])]



=== TEST 12: the client leaves a stream after its first delta (HTTP/1.0: no chunks to finish)
--- request eval
main::post('07', 'abort me please', '"stream": true') =~ s{^POST /chat}{POST /chat HTTP/1.0}r
--- config eval
$main::CONFIG =~ s/proxy_read_timeout 2s/proxy_read_timeout 5s/r
--- timeout: 1.5
--- abort
--- response_body eval
::chat_events(main::sess('07'), $main::ABORT_PIECES[0])
--- wait: 2.5



=== TEST 13: ... the chat is recorded once, "incomplete", with a part of the reply
--- request eval
my $s = main::sess('07');
["GET /chat?sessionId=$s", "GET /session/$s"]
--- response_body eval
my @ctx = (@main::SYS, @main::SEED, [user => 'abort me please']);
[::chat_list([::chat(input => 'abort me please', sessionId => main::sess('07'),
                     assistantId => main::asst('07'), status => 'incomplete',
                     messages => \@ctx,
                     output => [{ role => 'assistant', content => qr/$main::ABORT_PART/ }])]),
 ::whole(quotemeta('{"id": "' . main::sess('07') . '", ') . '.*'
         . quotemeta('"messages": [{"role":"user","content":"before"}, '
                     . '{"role":"assistant","content":"kept"}, '
                     . '{"role":"user","content":"abort me please"}, '
                     . '{"role":"assistant","content":') . $main::ABORT_PART
         . quotemeta('}]}'))]



=== TEST 14: the client leaves a stream before any output
--- request eval
main::post('0b', 'never mind', '"stream": true')
--- timeout: 0.5
--- abort
--- ignore_response
--- wait: 1.5



=== TEST 15: the client leaves a chat that does not stream
--- request eval
main::post('0c', 'never mind')
--- timeout: 0.5
--- abort
--- ignore_response
--- wait: 1.5



=== TEST 16: ... neither is recorded
--- request eval
[@{ main::failed_requests('0b', 'x') }[1, 2], @{ main::failed_requests('0c', 'x') }[1, 2]]
--- response_body eval
[main::untouched('0b'), ::chat_list([]), main::untouched('0c'), ::chat_list([])]



=== TEST 17: every failed chat gave its session's turn back and left its history as it was
--- init
CallHQ::Test::psql(q{update callhq.assistants set model = jsonb_set(model, '{model}', '"echo"')
                      where id::text like '12000000-0000-4000-8000-%'});
--- config eval
$main::CONFIG =~ s/callhq_api;/callhq_api; callhq_turn_timeout 0;/r
--- request eval
[map { main::post($_, 'after') } qw(01 02 03 04 05 06 07 08 09 0a 0b 0c)]
--- error_code eval
[(201) x 12]
--- response_body eval
my @ctx = (@main::SYS, @main::SEED, [user => 'reset me']);
my $part = CORE::join '', (::pieces(::echo(@ctx)))[0, 1];
[(map { main::after_chat($_) } qw(01 02 03 04 05)),
 main::after_chat('06', [user => 'reset me'], [assistant => $part]),
 qr/\A\{"id": .*, "messages": \[\{"role":"system","content":"SYS-120"\},\{"role":"user","content":"before"\},\{"role":"assistant","content":"kept"\},\{"role":"user","content":"abort me please"\},\{"role":"assistant","content":$main::ABORT_PART\},\{"role":"user","content":"after"\}\]\}\z/s,
 (map { main::after_chat($_) } qw(08 09 0a 0b 0c))]
