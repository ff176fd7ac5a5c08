# Chats that queue for a database connection record in one statement
# (ngx_http_callhq_pg_batch.c): with one pooled connection, six chats
# whose model answers while that connection is held (another chat's take
# waits on a row lock taken by psql) queue their records, which then run
# as one execution of callhq_turn_record_batch.  Each chat gets the answer
# it would have got alone, byte for byte the chat PostgreSQL stores, and
# each session its own two messages.  A batch that fails (here: a trigger
# refuses one chat's row) runs its chats again one by one: the others are
# recorded, the refused one answers an error and leaves nothing.
#
# Chats of an assistant with a server.url (someone listens for webhooks)
# are never batched: their events keep their order statement by statement.
#
# The takes of chats whose sessions' histories the node has (a chat of
# each went before) queue the same way, behind the held connection, and
# run as one callhq_turn_take_batch: each chat gets its own turn and its
# own history.  A chat with another org's key on one of those sessions,
# in the same batch, finds no row there and gets the general way's 404,
# leaving the session as it was; the others are served as if it were not
# there.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();

our $TMP = $ENV{CALLHQ_TEST_TMP} // '/tmp';

sub id { sprintf '17200000-0000-4000-8000-0000000000%s', shift }

# 01 slow echo (no server.url)   02 fast echo (the held session's)
# 03 slow echo with a server.url (never delivered: callhq_webhooks off)
# sessions 11-16 (01) batched; 21 (02) held; 31-35 (01) a failing batch;
# 41-42 (03) listened to; 51-54 (02) takes batched; 55-58 (02) takes
# batched with another org's key among them
psql(q{
    drop trigger if exists c172_poison on callhq.chats;
    delete from callhq.webhook_outbox where url like '%/t172/%';
    delete from callhq.chats
     where session_id::text like '17200000-0000-4000-8000-%'
        or assistant_id::text like '17200000-0000-4000-8000-%';
    delete from callhq.sessions where id::text like '17200000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '17200000-0000-4000-8000-%';
} . join('', map { my ($n, $model, $server) = @$_; qq{
    insert into callhq.assistants (id, org_id, name, model, server, created_at, updated_at)
    select '@{[ id($n) ]}', k.org_id, 'c172-$n',
           '{"provider": "openai", "model": "$model"}', $server,
           '2017-01-01T00:00:00Z', '2017-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } ['01', 'echo+slow-1500', 'null'], ['02', 'echo', 'null'],
    ['03', 'echo+slow-1500', q{'{"url": "http://127.0.0.1:9/t172/hook"}'}])
. join('', map { my ($n, $a) = @$_; qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, status, expiration_seconds,
                                 expires_at, next_seq, created_at, updated_at)
    select '@{[ id($n) ]}', k.org_id, '@{[ id($a) ]}', 'c172-$n', 'active', 86400,
           '2099-01-01T00:00:00Z', 1, '2017-02-01T00:00:00Z', '2017-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } (map { [$_, '01'] } qw(11 12 13 14 15 16 31 32 33 34 35)),
    (map { [$_, '02'] } qw(21 51 52 53 54 55 56 57 58)), ['41', '03'], ['42', '03']));

# sessions 51-58 have a turn already: the node caches a history from its
# second turn on (a first turn's is empty)
psql(join('', map { qq{
    update callhq.sessions set next_seq = 3 where id = '@{[ id($_) ]}';
    select callhq.messages_insert('@{[ id($_) ]}',
        '[{"role": "user", "content": "seed question"},
          {"role": "assistant", "content": "seed answer"}]', 1);
} } qw(51 52 53 54 55 56 57 58)));

# the events of sessions 41-42's chats are never delivered: the suites
# after this one, whose dispatchers would try, must not see them
END {
    eval { psql(q{delete from callhq.webhook_outbox where url like '%/t172/%'}) };
}

# A chat's body
sub chat_body {
    my ($sid, $input, $name) = @_;
    return '{"sessionId": "' . $sid . '", "input": "' . $input . '"'
           . ($name ? ', "name": "' . $name . '"' : '') . '}';
}

# Chats of these sessions in the background, each holding its turn when
# this returns (their models answer 1.5 s later).
sub start_chats {
    my ($tag, @sessions) = @_;
    for my $n (@sessions) {
        my $name = $n eq '33' ? 'c172-refused' : undef;
        ::chat_in_background("$TMP/c172-$n", "id = '@{[ id($n) ]}'",
                             chat_body(id($n), "question $n", $name));
    }
}

# psql locks session 21's row for $secs seconds; then a chat of it, whose
# take waits for the row on nginx's only connection (the others' records
# queue behind it).
my ($holder, $blocked);

sub hold_the_connection {
    my $secs = shift;
    my $sid = id('21');
    $holder = fork // die "fork: $!";
    if ($holder == 0) {
        open STDOUT, '>', '/dev/null';
        { exec 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', $ENV{TEST_NGINX_PG_CONNINFO},
               '-c', qq{/* c172-holder */ begin;
                        select 1 from callhq.sessions where id = '$sid' for update;
                        select pg_sleep($secs); commit;} };
        POSIX::_exit(127);
    }
    for (1 .. 400) {
        last if psql(q{select count(*) from pg_stat_activity
                        where query like '%c172-holder%' and wait_event = 'PgSleep'
                          and pid <> pg_backend_pid()}) == 1;
        Time::HiRes::sleep(0.025);
    }
    $blocked = fork // die "fork: $!";
    if ($blocked == 0) {
        my $resp = post_raw(chat_body($sid, 'held'));
        POSIX::_exit($resp =~ m{\AHTTP/1\.1 201 } ? 0 : 2);
    }
    for (1 .. 400) {
        return 1 if psql(q{select count(*) from pg_stat_activity
                            where wait_event_type = 'Lock' and query like '%callhq.sessions%'}) >= 1;
        Time::HiRes::sleep(0.025);
    }
    Test::More::fail("the held session's chat never waited for its row");
    return 0;
}

sub released {
    waitpid $holder, 0;
    my $h = $?;
    waitpid $blocked, 0;
    return "$h " . ($? >> 8);
}

# The chat's answer is the chat as PostgreSQL stores and prints it.
sub answered_as_stored {
    my ($n, $test) = @_;
    my $resp = ::chat_in_background_done("$TMP/c172-$n");
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    Test::More::like($head // '', qr{\AHTTP/1\.1 201 }, "$0 - $test: session $n answered 201");
    my ($chat) = ($body // '') =~ /^\{"id": "([0-9a-f-]{36})"/;
    my $stored = psql(qq{select callhq.chat_head(c)::text from callhq.chats c
                          where c.id = '@{[ $chat // '00000000-0000-0000-0000-000000000000' ]}'});
    # with the context it was sent (no history, no prompts: the input)
    $stored =~ s/\}\z/, "messages": [{"role":"user","content":"question $n"}]}/;
    Test::More::is($body, $stored, "$0 - $test: session ${n}'s answer is its stored chat");
}

# seqs, roles and contents of a session's messages; its turn and next seq
sub session_state {
    my $n = shift;
    return psql(qq{
        select concat_ws('|', s.next_seq, s.busy_chat is null,
               (select string_agg(m.seq || ':' || m.role || ':' || (m.content #>> '{}'), ','
                                  order by m.seq)
                  from callhq.messages m where m.session_id = s.id),
               (select count(*) from callhq.chats c where c.session_id = s.id))
          from callhq.sessions s where s.id = '@{[ id($n) ]}'});
}

# POST /chat of session $n, now (the answer), or from a child process
# (post_later: the answer in a file, read by post_answer)
my %later;

sub post_raw { return ::post_chat($_[0], undef, undef, $_[1]) }

sub post_later {
    my ($n, $input, $key) = @_;
    my $file = "$TMP/c172-later-$n";
    unlink $file;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $resp = post_raw(chat_body(id($n), $input), $key);
        open my $out, '>', $file or POSIX::_exit(1);
        print $out $resp;
        close $out;
        POSIX::_exit(0);
    }
    $later{$n} = [$pid, $file];
}

sub post_answer {
    my $n = shift;
    my ($pid, $file) = @{ delete $later{$n} };
    waitpid $pid, 0;
    open my $in, '<', $file or return '';
    local $/;
    return scalar <$in>;
}

# A first chat of each session; then the connection held and a second
# chat of each (keys: another API key for some) queued behind it; the
# holder released once all of them wait.
sub takes_queued {
    my ($test, $keys, @sessions) = @_;
    for my $n (@sessions) {
        Test::More::like(post_raw(chat_body(id($n), "first $n")),
                         qr{\AHTTP/1\.1 201 }, "$0 - $test: the first chat of session $n");
    }
    post_metrics();    # the outbox read now, not while held
    hold_the_connection(3);
    post_later($_, "second $_", $keys->{$_}) for @sessions;
    my $waiting = '';
    for (1 .. 400) {
        $waiting = metric('callhq_postgres_waiting_queries{worker="0"}');
        last if $waiting eq scalar @sessions;
        Time::HiRes::sleep(0.025);
    }
    Test::More::is($waiting, scalar @sessions, "$0 - $test: the takes wait for the connection");
    Test::More::is(released(), '0 0', "$0 - $test: the holder and the held chat ended well");
}

# The second chat of session $n answered 201, sent its whole history.
sub second_sent_history {
    my ($test, $n) = @_;
    my ($head, $body) = split /\r\n\r\n/, post_answer($n), 2;
    Test::More::like($head // '', qr{\AHTTP/1\.1 201 }, "$0 - $test: session $n answered 201");
    Test::More::like($body // '', qr{"messages": \[\{"role":"user","content":"seed question"\},\{"role":"assistant","content":"seed answer"\},\{"role":"user","content":"first $n"\},\{"role":"assistant","content":"[^"\\]*(?:\\.[^"\\]*)*"\},\{"role":"user","content":"second $n"\}\]\}\z},
                     "$0 - $test: session ${n}'s second chat was sent its history");
}

# what GET /metrics says of a metric's line (the value), or ''
sub metric {
    my $re = shift;
    my ($v) = post_metrics() =~ /^\Q$re\E (\S+)$/m;
    return $v // '';
}

sub post_metrics {
    my $port = Test::Nginx::Util::server_port_for_client();
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Timeout => 10) or return '';
    print $sock "GET /metrics/cached HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    local $/;
    return <$sock> // '';
}

our $HTTP = qq{callhq_postgres "\$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 1;
callhq_turn_timeout 20s;
callhq_webhooks off;};

our $CONFIG = api_location('/') . model_locations(read_timeout => '10s')
              . "location = /metrics {\n    callhq_metrics;\n"
              . "    callhq_metrics_db_interval 0;\n}\n"
              # read while the connection is held: no database read then
              . "location = /metrics/cached {\n    callhq_metrics;\n"
              . "    callhq_metrics_db_interval 1h;\n}\n";

callhq_defaults(http_config => $HTTP, config => $CONFIG, accum_error_log => 1,
                valgrind_timeout => 30);

run_tests();

__DATA__

=== TEST 1: six chats answered while the only connection is held: their records run in one batch
--- init
main::start_chats(1, qw(11 12 13 14 15 16));
main::hold_the_connection(3);
Test::More::is(main::released(), '0 0', "$0 - TEST 1: the holder and the held chat ended well");
main::answered_as_stored($_, 'TEST 1') for qw(11 12 13 14 15 16);
--- request
GET /metrics
--- timeout: 30
--- response_body_like
callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_record_batch"\} 1\b



=== TEST 2: ... each session has its own two messages, its turn back, one chat
--- init
for my $n (qw(11 12 13 14 15 16)) {
    my $e = ::echo([user => "question $n"]);
    $e =~ s/\\"/"/g;
    Test::More::is(main::session_state($n), "3|t|1:user:question $n,2:assistant:$e|1",
                   "$0 - TEST 2: session $n");
}
--- request eval
"GET /session/" . main::id('14')
--- response_body_like eval
qr/"messages": \[\{"role":"user","content":"question 14"\}, \{"role":"assistant","content":"\[\{\\"role\\":\\"user\\",\\"content\\":\\"question 14\\"\}\]"\}\]\}\z/



=== TEST 3: a batch fails (a trigger refuses one chat's row): its chats record one by one, the others are kept
--- init
CallHQ::Test::psql(q{
    create or replace function callhq.c172_poison() returns trigger language plpgsql as $$
    begin
        raise exception 'c172: this chat is refused';
    end $$;
    create trigger c172_poison before insert on callhq.chats for each row
        when (new.name = 'c172-refused') execute function callhq.c172_poison();
});
main::start_chats(3, qw(31 32 33 34 35));
main::hold_the_connection(3);
Test::More::is(main::released(), '0 0', "$0 - TEST 3: the holder and the held chat ended well");
main::answered_as_stored($_, 'TEST 3') for qw(31 32 34 35);
my ($head) = split /\r\n\r\n/, ::chat_in_background_done("$main::TMP/c172-33"), 2;
Test::More::like($head // '', qr{\AHTTP/1\.1 5\d\d }, "$0 - TEST 3: the refused chat answered an error");
Test::More::is(main::session_state('33'), '1|t|0', "$0 - TEST 3: the refused chat left nothing, its turn back");
for my $n (qw(31 32 34 35)) {
    my $e = ::echo([user => "question $n"]);
    $e =~ s/\\"/"/g;
    Test::More::is(main::session_state($n), "3|t|1:user:question $n,2:assistant:$e|1",
                   "$0 - TEST 3: session $n");
}
CallHQ::Test::psql(q{drop trigger c172_poison on callhq.chats; drop function callhq.c172_poison()});
--- request
GET /metrics
--- timeout: 30
--- response_body_like
callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_record_batch"\} 1\b
--- error_log
a batch of 5 "callhq_turn_record_batch" failed, running them one by one: c172: this chat is refused
--- no_error_log
[crit]
[alert]



=== TEST 4: chats someone listens to (a server.url) are not batched, and are recorded
--- init
main::start_chats(4, qw(41 42));
main::hold_the_connection(3);
Test::More::is(main::released(), '0 0', "$0 - TEST 4: the holder and the held chat ended well");
main::answered_as_stored($_, 'TEST 4') for qw(41 42);
--- request
GET /metrics
--- timeout: 30
--- response_body_like
\A(?!.*callhq_turn_record_batch).*callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_record"\} 3\b



=== TEST 5: the takes of chats whose histories the node has, queued while the only connection is held, run in one batch: each chat its own turn and history
--- init
main::takes_queued('TEST 5', {}, qw(51 52 53 54));
for my $n (qw(51 52 53 54)) {
    main::second_sent_history('TEST 5', $n);
    Test::More::is(CallHQ::Test::psql(qq{
        select concat_ws('|', s.next_seq, s.busy_chat is null,
               (select string_agg(m.seq || ':' || m.role, ',' order by m.seq)
                  from callhq.messages m where m.session_id = s.id),
               (select m.content #>> '{}' from callhq.messages m
                 where m.session_id = s.id and m.seq = 5))
          from callhq.sessions s where s.id = '@{[ main::id($n) ]}'}),
        "7|t|1:user,2:assistant,3:user,4:assistant,5:user,6:assistant|second $n",
        "$0 - TEST 5: session $n");
}
--- request
GET /metrics
--- timeout: 30
--- response_body_like
callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_take_batch"\} 1\b



=== TEST 6: another org's key in a batch of takes: 404 for it, the session untouched, the others served
--- init
main::takes_queued('TEST 6', {58 => 'cq_test_b'}, qw(55 56 57 58));
main::second_sent_history('TEST 6', $_) for qw(55 56 57);
my ($head, $body) = split /\r\n\r\n/, main::post_answer('58'), 2;
Test::More::like($head // '', qr{\AHTTP/1\.1 404 }, "$0 - TEST 6: another org's chat answered 404");
Test::More::is($body // '', '{"statusCode":404,"error":"Not Found","message":"Session '
                 . main::id('58') . ' not found"}', "$0 - TEST 6: ... the session not found");
Test::More::is(CallHQ::Test::psql(qq{
    select concat_ws('|', s.next_seq, s.busy_chat is null,
           (select string_agg(m.seq || ':' || m.role, ',' order by m.seq)
              from callhq.messages m where m.session_id = s.id),
           (select count(*) from callhq.chats c where c.session_id = s.id))
      from callhq.sessions s where s.id = '@{[ main::id('58') ]}'}),
    "5|t|1:user,2:assistant,3:user,4:assistant|1",
    "$0 - TEST 6: session 58 as its first chat left it");
--- request
GET /metrics
--- timeout: 30
--- response_body_like
callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_take_batch"\} 1\b
