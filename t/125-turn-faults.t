# Faults around a chat's turn: a reply is never thrown away for want of
# the database, and no failure leaves a session's turn held.
#
#   1  PostgreSQL stops while the model answers: the record is retried
#      (callhq_record_retry) and lands once it is back; the client waits
#      and gets 201; the turn goes back.
#   2  ... a streamed chat: the client's stream ends at once, the record
#      lands later.
#   3  ... longer than callhq_record_retry: 503 JSON, the reply dropped
#      (logged with the chat id), the turn given back once the database
#      answers again.
#   4  A chat longer than its lease keeps the turn: the lease is renewed.
#   5  A worker killed mid-chat: its session is free again within the
#      default lease (30s), not 10 minutes.
#   6  A graceful reload mid-chat: the old worker records the chat and
#      gives the turn back.
#   7  Lock order: a chat recorded while DELETE /assistant runs (a test
#      trigger holds the delete for 3s with the assistant locked): no
#      deadlock, both succeed.
#   8  A chat recorded while DELETE /session of its session runs (held
#      3s the same way): the record waits for the session's row, finds it
#      gone and keeps the chat alone; no chat names a deleted session
#      (chats have no foreign key to sessions: the lock is what keeps it).
#
# Each scenario is one block on one nginx (t/fixtures/gate.pl): children
# send the concurrent requests, /_test/ starts PostgreSQL again and hands
# over a child's answer; init code waits for log lines, not for time.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat gate);

sub id { sprintf '12500000-0000-4000-8000-0000000000%s', shift }

# assistants: 01 echo+slow-1500, 02 echo+slow-5000, 03 echo+slow-60000,
# 05 echo, 07 echo+slow-1000 (named slowdel-: its DELETE is held 3s);
# sessions 1n of assistant 01 (n = 1, 2, 3, 6), 14 of 02, 15 of 03.
our %ASST = ('01' => 'echo+slow-1500', '02' => 'echo+slow-5000',
             '03' => 'echo+slow-60000', '05' => 'echo', '07' => 'echo+slow-1000');
our %SESS = ('11' => '01', '12' => '01', '13' => '01', '14' => '02',
             '15' => '03', '16' => '01', '17' => '01');

psql(q{
    delete from callhq.sessions where id::text like '12500000-%'
        or customer->>'number' = '+15551250007';
    delete from callhq.chats where id::text like '12500000-%'
        or assistant_id::text like '12500000-%';
    delete from callhq.assistants where id::text like '12500000-%';

    create or replace function public.callhq_test_slow_delete()
    returns trigger language plpgsql as $$
    begin
        if old.name like 'slowdel-%' then
            perform pg_sleep(3);
        end if;
        return old;
    end $$;
    drop trigger if exists callhq_test_slow_delete on callhq.assistants;
    create trigger callhq_test_slow_delete before delete on callhq.assistants
        for each row execute function public.callhq_test_slow_delete();
    drop trigger if exists callhq_test_slow_delete on callhq.sessions;
    create trigger callhq_test_slow_delete before delete on callhq.sessions
        for each row execute function public.callhq_test_slow_delete();
} . join('', map { qq{
    insert into callhq.assistants (id, org_id, name, model)
    select '@{[ id($_) ]}', k.org_id,
           '@{[ $_ eq '07' ? 'slowdel-125' : "c125-$_" ]}',
           '{"provider": "openai", "model": "$ASST{$_}",
             "messages": [{"role": "system", "content": "SYS-125"}]}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %ASST) . join('', map { qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, created_at, updated_at)
    select '@{[ id($_) ]}', k.org_id, '@{[ id($SESS{$_}) ]}',
           '@{[ $_ eq '17' ? 'slowdel-125' : "c125-$_" ]}', 86400,
           '2099-01-01T00:00:00Z', '2013-02-01T00:00:00Z', '2013-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %SESS));

our @SYS = ([system => 'SYS-125']);

# the context of the second chat of a session whose first was recorded
sub two {
    my @one = (@SYS, [user => 'one']);
    return (@one, [assistant => ::echo(@one)], [user => 'two']);
}

sub post {
    my ($sid, $input, $more) = @_;
    return qq[{"sessionId": "$sid", "input": "$input"]
           . ($more ? ", $more" : '') . '}';
}

sub chat_src {
    my ($sid, $asst, @ctx) = @_;
    my $reply = ::echo(@ctx);
    return ::chat(input => $ctx[-1][1], sessionId => $sid,
                  assistantId => $asst, messages => \@ctx,
                  output => [[assistant => $reply]],
                  usage => ::usage(\@ctx, $reply));
}

sub chat_of { return ::whole(chat_src(@_)) }

# a child's answer: this status, the body this chat
sub answered {
    my ($status, @chat) = @_;
    use re 'eval';
    my $src = chat_src(@chat);
    return qr/\AHTTP\/1\.1 $status .*?\r\n\r\n$src\z/s;
}

# the chat of session $sid holds its turn
sub busy {
    my $cond = shift;
    for (1 .. 400) {
        return 1 if CallHQ::Test::psql("select coalesce(bool_or(busy_chat is not null),"
                                       . " false) from callhq.sessions where $cond") eq 't';
        Time::HiRes::sleep(0.025);
    }
    die "no session where $cond got busy\n";
}

# starts chat $name in a child and returns once it holds the turn
sub start_chat {
    my ($name, $sid, $body, $cond) = @_;
    main::spawn_request($name, 'POST', '/chat', $body);
    busy($cond // "id = '$sid'");
}

sub stop_pg_until {
    my $re = shift;
    my $from = main::log_size();
    CallHQ::Test::pg_stop();
    main::wait_for_log($re, $from) or die "no log line $re\n";
}

*nginx_pid = \&CallHQ::Test::nginx_pid;

END {
    CallHQ::Test::pg_start() if !CallHQ::Test::pg_running();
}

our $HTTP = <<'_EOC_';
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_webhooks off;
_EOC_

sub config {
    return api_location('/', @_) . api_location('/quick/', 'callhq_turn_timeout 300ms;')
           . api_location('/patient/', 'callhq_turn_timeout 50s;')
           . model_locations(read_timeout => '90s');
}

# a worker to kill, a master to reload
master_on();

gate_defaults(http_config => $HTTP, config => config(),
              no_error_log => "[crit]\n[alert]\nits reply is dropped");

our ($S1, $S2, $S3, $S4, $S5, $S6, $S7) = map { id($_) } qw(11 12 13 14 15 16 17);
our ($A1, $A2, $A3, $A5, $A7) = map { id($_) } qw(01 02 03 05 07);

run_tests();

__DATA__

=== TEST 1: PostgreSQL stops while the model answers: the record is retried, the client gets 201 once it is back, the turn goes back
--- config eval
main::config()
--- init
main::start_chat('t1', $main::S1, main::post($main::S1, 'one'));
main::stop_pg_until(qr/recording chat \S+ failed .*try 2 again/);
--- request eval
["GET /_test/pg_start", "GET /_test/child/t1",
 "POST /quick/chat\n" . main::post($main::S1, 'two'),
 "GET /session/$main::S1"]
--- response_body eval
['started',
 main::answered(201, $main::S1, $main::A1, @main::SYS, [user => 'one']),
 main::chat_of($main::S1, $main::A1, main::two()),
 ::session_re({ id => $main::S1, orgId => $::ORG_A, name => 'c125-11',
                status => 'active', assistantId => $main::A1,
                expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
                createdAt => '2013-02-01T00:00:00.000Z', updatedAt => $::TS },
              (main::two())[1 .. 3],
              [assistant => ::echo(main::two())])]
--- error_code eval
[200, 200, 201, 200]
--- error_log eval
[qr/\[warn\] .*recording chat [0-9a-f-]{36} failed \(database unavailable\), try 2 again/]



=== TEST 2: ... a streamed chat: its stream ends while the database is away, the record lands once it is back
--- config eval
main::config()
--- init
main::start_chat('t2', $main::S2, main::post($main::S2, 'one', '"stream": true'));
main::stop_pg_until(qr/recording chat \S+ failed/);
--- request eval
["GET /_test/child/t2", "GET /_test/pg_start",
 "POST /patient/chat\n" . main::post($main::S2, 'two')]
--- response_body eval
[qr/\AHTTP\/1\.1 200 .*text\/event-stream.*\r\n\r\n.*"delta":.*\r\n0\r\n\r\n\z/s,
 'started',
 main::chat_of($main::S2, $main::A1, main::two())]
--- error_code eval
[200, 200, 201]



=== TEST 3: ... longer than callhq_record_retry: 503, the reply dropped and logged, the turn back once the database is
--- config eval
main::config('callhq_record_retry 1s;')
--- init
main::start_chat('t3', $main::S3, main::post($main::S3, 'one'));
main::stop_pg_until(qr/could not be recorded, its reply is dropped/);
--- request eval
["GET /_test/child/t3", "GET /_test/pg_start",
 "POST /patient/chat\n" . main::post($main::S3, 'two')]
--- response_body eval
[main::raw_response(503, quotemeta(::cerr(503, 'database unavailable'))),
 'started',
 main::chat_of($main::S3, $main::A1, @main::SYS, [user => 'two'])]
--- error_code eval
[200, 200, 201]
--- error_log eval
[qr/\[error\] .*chat [0-9a-f-]{36} could not be recorded, its reply is dropped/]
--- no_error_log
[crit]
[alert]



=== TEST 4: a chat longer than its lease (3s, the model takes 5s) keeps its turn: the lease is renewed
--- config eval
main::config('callhq_turn_lease 3s;', 'callhq_turn_timeout 20s;')
--- init
main::start_chat('t4', $main::S4, main::post($main::S4, 'one'));
--- request eval
["POST /chat\n" . main::post($main::S4, 'two'), "GET /_test/child/t4"]
--- response_body eval
[main::chat_of($main::S4, $main::A2, main::two()),
 main::answered(201, $main::S4, $main::A2, @main::SYS, [user => 'one'])]
--- error_code eval
[201, 200]
--- timeout: 40



=== TEST 5: a worker killed mid-chat: its session is free again within the default lease
--- config eval
main::config()
--- init
main::start_chat('t5', $main::S5, main::post($main::S5, 'one'));
my @workers = grep { /^\d+$/ } split /\s+/, `pgrep -P @{[ main::nginx_pid() ]}`;
kill 'KILL', @workers;
# the next chat of the session need not wait a minute for its model
CallHQ::Test::psql("update callhq.sessions set assistant_id = '$main::A5'"
                   . " where id = '$main::S5'");
--- request eval
"POST /patient/chat\n" . main::post($main::S5, 'two')
--- response_body eval
main::chat_of($main::S5, $main::A5, @main::SYS, [user => 'two'])
--- error_code: 201
--- timeout: 60
--- no_error_log
[crit]



=== TEST 6: a graceful reload mid-chat: the old worker records the chat and gives the turn back
--- config eval
main::config()
--- init
main::start_chat('t6', $main::S6, main::post($main::S6, 'one'));
kill 'HUP', main::nginx_pid();
--- request eval
["GET /_test/child/t6", "POST /quick/chat\n" . main::post($main::S6, 'two')]
--- response_body eval
[main::answered(201, $main::S6, $main::A1, @main::SYS, [user => 'one']),
 main::chat_of($main::S6, $main::A1, main::two())]
--- error_code eval
[200, 201]



=== TEST 7: lock order: a chat recorded while DELETE /assistant holds its assistant: no deadlock, both answer
--- config eval
main::config()
--- init
main::start_chat('t7', undef,
    qq{{"assistantId": "$main::A7", "customer": {"number": "+15551250007"}, "input": "one"}},
    "customer->>'number' = '+15551250007'");
main::spawn_request('t7d', 'DELETE', "/assistant/$main::A7");
--- request eval
["GET /_test/child/t7d", "GET /_test/child/t7",
 "GET /session?customerNumberAny=%2B15551250007"]
--- response_body eval
[main::raw_response(200, qr/\{"id": "$main::A7", /),
 main::raw_response(201, qr/\{"id": "[0-9a-f-]{36}", /),
 qr/"totalItems": 1,.*/s]
--- no_error_log
[crit]
[alert]
deadlock



=== TEST 8: a chat recorded while DELETE /session of its session holds the row: the chat stays alone, no chat names a deleted session
--- config eval
main::config()
--- init
main::start_chat('t8', $main::S7, main::post($main::S7, 'deleted under it'));
main::spawn_request('t8d', 'DELETE', "/session/$main::S7");
--- request eval
["GET /_test/child/t8d", "GET /_test/child/t8"]
--- response_body eval
[main::raw_response(200, qr/\{"id": "$main::S7", /),
 main::raw_response(201, qr/\{"id": "[0-9a-f-]{36}", "input": "deleted under it", (?!.*"sessionId")/s)]
--- no_error_log
[crit]
[alert]
deadlock



=== TEST 9: ... the chat is there, without its session; its messages went with the session
--- request eval
"GET /chat?sessionId=$main::S7"
--- response_body_like eval
qr/"totalItems": 0,/
--- init
Test::More::is(CallHQ::Test::psql(q{
    select count(*) filter (where c.session_id is not null
                              and not exists (select 1 from callhq.sessions s
                                               where s.id = c.session_id))
           || '/' || count(*) filter (where c.input = '"deleted under it"'
                                        and c.session_id is null)
           || '/' || (select count(*) from callhq.messages m
                       where m.session_id = '12500000-0000-4000-8000-000000000017')
      from callhq.chats c}), '0/1/0',
    "$0 - TEST 9: chats naming a deleted session / the chat kept alone / messages left");
