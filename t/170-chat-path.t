# The chat of a session in two plain statements (ngx_http_callhq_turn.c):
# POST /chat {sessionId, input[, stream][, name][, metadata]} takes the
# turn and reads its context in one statement, records the turn and gives
# it back in another; every other body, and every case those statements
# cannot answer, goes the general way (callhq.chat_begin, chat_record).
#
# Here: that the fast path is taken (PostgreSQL counts the PL/pgSQL calls,
# track_functions = 'pl'), that it answers and stores what the general way
# does, that the bodies and sessions it must not serve still get the
# general way's exact errors and leave nothing behind, that escapes and
# non-ASCII text survive, that webhook rows are queued in the chat's own
# transaction only when someone listens, that a history written while the
# turn was being taken is read again, that a failing model gives the turn
# back, and that the session row is updated in place (HOT).
#
# Function and table statistics are flushed by a backend when it goes idle
# (at most once a second) or exits: the counting blocks use one pooled
# connection that nginx closes when idle (pool_size 1, idle_timeout), and
# the block after waits until no connection of nginx is left and the
# counts are in (::settled).
#
# The assistants use the mock's "echo" model: its reply is the compact
# JSON of the messages it received.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);
use JSON::PP ();
use Encode ();
use POSIX ();
use Time::HiRes ();

our $MODEL_LOCATIONS = model_locations();
our $CONFIG = api_location('/') . $MODEL_LOCATIONS;

# One connection, closed when idle: its statistics are flushed at once.
our $COUNTED_HTTP = qq{callhq_postgres "\$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 1;
callhq_postgres_idle_timeout 100ms;
callhq_webhooks off;};

# No webhook dispatcher (it would claim the rows TEST 13 reads, hold a
# connection and sweep sessions): the outbox is only written.
callhq_defaults(config => $CONFIG, extra_http => 'callhq_webhooks off;',
                accum_error_log => 1, valgrind_timeout => 10);

sub id { sprintf '17000000-0000-4000-8000-0000000000%s', shift }

# Ids 17000000-0000-4000-8000-0000000000NN, Org A unless said (SYS-170):
#   01  c170-echo (echo, temperature 0.2, maxTokens 64)
#   02  c170-hook (echo, server.url: webhooks queued, never delivered)
#   03  c170-ascii (echo+ascii: the reply's JSON escapes all non-ASCII)
#   04  c170-fail (echo+fail-500)       05  c170-slow (echo+slow-3000)
#   06  c170-race (echo+slow-1000)      07  c170-nomodel (no model.model)
#   08  Org B's assistant
#   11  counted chats (01)       12, 13  twins: fast, general (01, seeded)
#   14  bodies that go the general way (01, seeded)
#   15  completed (01)           16  expired (01)          17  Org B's (08)
#   18  assistant without model (07)   19  no assistant
#   1a  unicode (03)             1b  webhooks (02)         1c  no webhooks (01)
#   1d  two chats racing (06)    1e  history written while the turn is taken (01)
#   1f  model fails (04)         20  model times out (05)  21  HOT (01)
#   22  a client that leaves (01)  23  the chat's JSON built in C (01)
#   24  prompts changed between two chats (09, the worker keeps them)
#   c1  the fast twin's chat, c2 the general twin's (ids given by TEST 4)
our %ASST = ('01' => ['cq_test_a', '{"provider": "openai", "model": "echo", "temperature": 0.2, "maxTokens": 64, "messages": [{"role": "system", "content": "SYS-170"}]}', undef],
             '02' => ['cq_test_a', '{"provider": "openai", "model": "echo", "messages": [{"role": "system", "content": "SYS-170"}]}', '{"url": "http://127.0.0.1:9/t170/hook"}'],
             '03' => ['cq_test_a', '{"provider": "openai", "model": "echo+ascii", "messages": [{"role": "system", "content": "SYS-170"}]}', undef],
             '04' => ['cq_test_a', '{"provider": "openai", "model": "echo+fail-500", "messages": [{"role": "system", "content": "SYS-170"}]}', undef],
             '05' => ['cq_test_a', '{"provider": "openai", "model": "echo+slow-3000", "messages": [{"role": "system", "content": "SYS-170"}]}', undef],
             '06' => ['cq_test_a', '{"provider": "openai", "model": "echo+slow-1000", "messages": [{"role": "system", "content": "SYS-170"}]}', undef],
             '07' => ['cq_test_a', '{"provider": "openai"}', undef],
             '08' => ['cq_test_b', '{"provider": "openai", "model": "echo", "messages": [{"role": "system", "content": "SYS-170-B"}]}', undef],
             '09' => ['cq_test_a', '{"provider": "openai", "model": "echo", "messages": [{"role": "system", "content": "SYS-170-OLD"}]}', undef]);

# session => [key, assistant, status, expires_at, seeded]
our %SESS = ('11' => ['cq_test_a', '01', 'active', '2099-01-01', 0],
             '12' => ['cq_test_a', '01', 'active', '2099-01-01', 1],
             '13' => ['cq_test_a', '01', 'active', '2099-01-01', 1],
             '14' => ['cq_test_a', '01', 'active', '2099-01-01', 1],
             '15' => ['cq_test_a', '01', 'completed', '2099-01-01', 0],
             '16' => ['cq_test_a', '01', 'active', '2003-01-01', 0],
             '17' => ['cq_test_b', '08', 'active', '2099-01-01', 0],
             '18' => ['cq_test_a', '07', 'active', '2099-01-01', 0],
             '19' => ['cq_test_a', undef, 'active', '2099-01-01', 0],
             '1a' => ['cq_test_a', '03', 'active', '2099-01-01', 0],
             '1b' => ['cq_test_a', '02', 'active', '2099-01-01', 0],
             '1c' => ['cq_test_a', '01', 'active', '2099-01-01', 0],
             '1d' => ['cq_test_a', '06', 'active', '2099-01-01', 0],
             '1e' => ['cq_test_a', '01', 'active', '2099-01-01', 0],
             '1f' => ['cq_test_a', '04', 'active', '2099-01-01', 1],
             '20' => ['cq_test_a', '05', 'active', '2099-01-01', 1],
             '21' => ['cq_test_a', '01', 'active', '2099-01-01', 0],
             '22' => ['cq_test_a', '01', 'active', '2099-01-01', 0],
             '23' => ['cq_test_a', '01', 'active', '2099-01-01', 0],
             '24' => ['cq_test_a', '09', 'active', '2099-01-01', 0]);

sub q_or_null { defined $_[0] ? "'$_[0]'" : 'null' }

psql(q{
    delete from callhq.webhook_outbox where url like '%/t170/%';
    delete from callhq.chats
     where id::text like '17000000-0000-4000-8000-%' or name like 'c170-%'
        or session_id::text like '17000000-0000-4000-8000-%'
        or assistant_id::text like '17000000-0000-4000-8000-%';
    delete from callhq.sessions
     where id::text like '17000000-0000-4000-8000-%'
        or assistant_id::text like '17000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '17000000-0000-4000-8000-%';
} . join('', map { my ($key, $model, $server) = @{ $ASST{$_} }; qq{
    insert into callhq.assistants (id, org_id, name, model, server, created_at, updated_at)
    select '@{[ id($_) ]}', k.org_id, 'c170-$_', '$model', @{[ q_or_null($server) ]},
           '2017-01-01T00:00:00Z', '2017-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('$key');
} } sort keys %ASST) . join('', map { my ($key, $a, $status, $exp, $seed) = @{ $SESS{$_} }; qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, status, expiration_seconds,
                                 expires_at, next_seq, created_at, updated_at)
    select '@{[ id($_) ]}', k.org_id, @{[ q_or_null(defined $a ? id($a) : undef) ]},
           'c170-$_', '$status', 86400, '${exp}T00:00:00Z', @{[ $seed ? 3 : 1 ]},
           '2017-02-01T00:00:00Z', '2017-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('$key');
} . ($seed ? qq{
    select callhq.messages_insert('@{[ id($_) ]}',
        '[{"role": "user", "content": "seed question"},
          {"role": "assistant", "content": "seed answer"}]', 1);
} : '') } sort keys %SESS));

# PostgreSQL counts the calls of PL/pgSQL functions from now on, in the
# connections nginx opens (reset after run_tests).
psql(q{do $$ begin
    execute format('alter database %I set track_functions = ''pl''', current_database());
end $$});

our ($ECHO, $HOOK, $ASCII, $FAILA, $SLOWA, $RACEA, $NOMODEL, $B_ASST)
    = map { id($_) } qw(01 02 03 04 05 06 07 08);
our ($COUNTED, $FAST, $GENERAL, $ERRS, $COMPLETED, $EXPIRED, $B_SESS, $NOMODEL_S,
     $NOASST, $UNI, $HOOKED, $UNHOOKED, $RACE, $STALE, $FAIL, $SLOW, $HOT, $LEFT,
     $HEADS, $EDITED)
    = map { id($_) } qw(11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24);
our ($FAST_CHAT, $GENERAL_CHAT) = map { id($_) } qw(c1 c2);
our $MISSING = id('ff');

our @SYS = ([system => 'SYS-170']);
our @SEED = ([user => 'seed question'], [assistant => 'seed answer']);
our $TMP = $ENV{CALLHQ_TEST_TMP} // '/tmp';

sub post {
    my ($sid, $input, $more) = @_;
    return "POST /chat\n{\"sessionId\": \"$sid\", \"input\": \"$input\""
           . ($more ? ", $more" : '') . '}';
}

# A chat of a session of assistant 01 with this context, as POST /chat
# and GET /chat answer it; its reply the echo of the context.
sub echo_chat {
    my ($sid, $ctx, %more) = @_;
    my $e = ::echo(@$ctx);
    return ::chat(input => $ctx->[-1][1], sessionId => $sid, assistantId => $ECHO,
                  messages => $ctx, output => [[assistant => $e]],
                  usage => ::usage($ctx, $e), %more);
}

sub upstream_echo {
    return ::mock_requests(::upstream(model => 'echo', temperature => '0.2',
                                      max_tokens => 64, messages => [@_]));
}

# A session as GET /session/{id} reads it.
sub session_of {
    my ($id, $name, $asst, $msgs, %more) = @_;
    return ::session_body({ id => $id, orgId => $::ORG_A, name => $name,
        status => 'active', assistantId => $asst, expirationSeconds => \86400,
        expiresAt => '2099-01-01T00:00:00.000Z',
        createdAt => '2017-02-01T00:00:00.000Z', updatedAt => $::TS, %more }, @$msgs);
}

# ---- statistics

our @FNS = qw(chat_begin chat_record webhook_chat_event webhook_session_event);

sub fn_calls {
    my %c = map { split /\|/ } grep { length } split /\n/, psql(q{
        select funcname, calls from pg_stat_user_functions
         where schemaname = 'callhq'
           and funcname in ('chat_begin', 'chat_record', 'webhook_chat_event',
                            'webhook_session_event')});
    return { map { $_ => $c{$_} // 0 } @FNS };
}

sub table_upd {
    my ($upd, $hot) = split /\|/, psql(q{select n_tup_upd, n_tup_hot_upd
                                          from pg_stat_user_tables
                                         where relid = 'callhq.sessions'::regclass});
    return { upd => $upd, hot => $hot };
}

# Waits until nginx has no connection to the database left (a backend
# flushes its statistics as it exits), then until $done->() holds, up to
# 12 s; then once more a moment later, for a straggler.
sub settled {
    my ($done) = @_;
    for (1 .. 120) {
        last if psql(q{select count(*) from pg_stat_activity
                        where datname = current_database() and backend_type = 'client backend'
                          and pid <> pg_backend_pid()}) == 0;
        Time::HiRes::sleep(0.1);
    }
    for (1 .. 120) {
        last if $done->();
        Time::HiRes::sleep(0.1);
    }
    Time::HiRes::sleep(0.3);
    return $done->();
}

sub delta {
    my ($now, $base) = @_;
    return { map { $_ => $now->{$_} - $base->{$_} } keys %$base };
}

our (%BASE, $FN0, $UPD0);

# ---- decoding

sub hex_of { return unpack 'H*', shift }

# The body's "messages" decode to these [role, content] pairs (byte
# strings), whatever escapes they are written with; the rest of the body
# must match $head_src (the chat's other members, as regex source).
sub chat_with_context {
    my ($head_src, $ctx) = @_;
    my $want = hex_of(join "\0", map { @$_ } @$ctx);
    $head_src =~ s/\\\}\z// or die "not an object: $head_src\n";
    return ::whole($head_src . ', "messages": (\[.*\])\}\z(*COMMIT)'
                   . "(?(?{ main::decoded_messages(\$^N) ne '$want' })(*FAIL))");
}

sub decoded_messages {
    my $json = shift;
    my $m = eval { JSON::PP->new->utf8->decode($json) } or return "not JSON: $json";
    return hex_of(join "\0", map { Encode::encode_utf8($_->{role}),
                                    Encode::encode_utf8($_->{content}) } @$m);
}

# ---- a transaction that holds the session's row as a chat's record does

our %HOLDERS;

# Appends a user/assistant pair to session $sid and moves its next_seq,
# then holds the row lock for $secs seconds before it commits. Returns
# once the transaction is sleeping, the row locked.
sub hold_session {
    my ($sid, $secs) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        { exec 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', $ENV{TEST_NGINX_PG_CONNINFO}, '-c', qq{
            /* c170-holder */
            begin;
            insert into callhq.messages (session_id, seq, role, content, raw)
            values ('$sid', 1, 'user', '"racer question"', '{"role":"user","content":"racer question"}'),
                   ('$sid', 2, 'assistant', '"racer answer"',
                    '{"role":"assistant","content":"racer answer"}');
            update callhq.sessions set next_seq = 3, updated_at = callhq.now_ms() where id = '$sid';
            select pg_sleep($secs);
            commit;} };
        POSIX::_exit(127);
    }
    $HOLDERS{$sid} = $pid;
    for (1 .. 200) {
        return 1 if psql(q{select count(*) from pg_stat_activity
                            where query like '%c170-holder%' and wait_event = 'PgSleep'
                              and pid <> pg_backend_pid()}) == 1;
        Time::HiRes::sleep(0.025);
    }
    Test::More::fail("hold_session: the holder of $sid did not start");
    return 0;
}

sub hold_session_done {
    my $sid = shift;
    my $pid = delete $HOLDERS{$sid} or return -1;
    waitpid $pid, 0;
    return $?;
}

# ---- the texts with escapes

# What the client sends (JSON string contents) and what it means (bytes).
our $UNI_JSON = 'caf\u00e9 \"quoted\" back\\\\slash\nline2 \ud83d\ude00 tab\t\u0001 \/';
our $UNI_TEXT = "caf\xc3\xa9 \"quoted\" back\\slash\nline2 \xf0\x9f\x98\x80 tab\t\x01 /";
our @U1 = (@SYS, [user => $UNI_TEXT]);
our $UE1 = ::echo(@U1);
our @U2 = (@U1, [assistant => $UE1], [user => 'and now?']);
our $UE2 = ::echo(@U2);

sub uni_chat {
    my ($ctx, $reply) = @_;
    my $head = ::chat(input => $ctx->[-1][1], sessionId => $UNI, assistantId => $ASCII,
                      output => [[assistant => $reply]], usage => ::usage($ctx, $reply));
    return chat_with_context($head, $ctx);
}

# Sends a chat of session $sid and closes the connection after $secs
# seconds, without reading the answer.
sub post_and_leave {
    my ($sid, $secs) = @_;
    my $body = qq{{"sessionId": "$sid", "input": "leaving"}};
    my $sock;
    for (1 .. 200) {    # nginx may still be starting (valgrind)
        $sock = IO::Socket::INET->new(
            PeerAddr => '127.0.0.1',
            PeerPort => Test::Nginx::Util::server_port_for_client(),
            Timeout => 5) and last;
        Time::HiRes::sleep(0.1);
    }
    return 0 unless $sock;
    print $sock "POST /chat HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer cq_test_a\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    # leaves once the chat's take waits for the session's row (or after
    # $secs): under valgrind and load, nginx takes its time to get there
    for (1 .. $secs * 40) {
        last if psql(q{select count(*) from pg_stat_activity
                        where query like 'with t as ( update callhq.sessions%'
                          and wait_event_type = 'Lock'}) >= 1;
        Time::HiRes::sleep(0.025);
    }
    Time::HiRes::sleep(0.1);
    close $sock;
    return 1;
}

sub poll_sql {
    my ($sql, $want) = @_;
    my $got;
    for (1 .. 60) {
        $got = psql($sql);
        return $got if $got eq $want;
        Time::HiRes::sleep(0.05);
    }
    return $got;
}

run_tests();

psql(q{do $$ begin
    execute format('alter database %I reset track_functions', current_database());
end $$});
psql(q{delete from callhq.webhook_outbox where url like '%/t170/%'});
hold_session_done($_) for keys %HOLDERS;

__DATA__

=== TEST 1: counted: a {sessionId, input} chat, then two chats the general way (assistantOverrides, assistantId)
--- http_config eval
$main::COUNTED_HTTP
--- init
$main::FN0 = main::settled(sub { 1 }) && main::fn_calls();
--- request eval
[main::post($main::COUNTED, 'counted fast'),
 main::post($main::COUNTED, 'counted general', '"assistantOverrides": {}'),
 "POST /chat\n{\"assistantId\": \"$main::ECHO\", \"input\": \"c170 fresh\", \"name\": \"c170-fresh\"}"]
--- error_code eval
[201, 201, 201]
--- response_body eval
my @c1 = (@main::SYS, [user => 'counted fast']);
my @c2 = (@c1, [assistant => ::echo(@c1)], [user => 'counted general']);
my @c3 = (@main::SYS, [user => 'c170 fresh']);
[::whole(main::echo_chat($main::COUNTED, \@c1)),
 ::whole(main::echo_chat($main::COUNTED, \@c2)),
 ::whole(main::echo_chat(undef, \@c3, name => 'c170-fresh'))]



=== TEST 2: ... chat_begin and chat_record ran for the two general chats only; no webhook trigger ran for the fast one
--- init
my $d;
main::settled(sub { $d = main::delta(main::fn_calls(), $main::FN0);
                    $d->{chat_begin} >= 2 && $d->{chat_record} >= 2 });
Test::More::is_deeply($d, { chat_begin => 2, chat_record => 2, webhook_chat_event => 2,
                            webhook_session_event => 1 },
                      "$0 - TEST 2: PL/pgSQL calls of one fast and two general chats");
--- request eval
"GET /session/$main::COUNTED"
--- response_body eval
my @c1 = (@main::SYS, [user => 'counted fast']);
my @c2 = (@c1, [assistant => ::echo(@c1)], [user => 'counted general']);
main::session_of($main::COUNTED, 'c170-11', $main::ECHO,
    [[user => 'counted fast'], [assistant => ::echo(@c1)],
     [user => 'counted general'], [assistant => ::echo(@c2)]])



=== TEST 3: twins: the same chat on two sessions with the same history, fast and general
--- request eval
my $more = '"name": "c170-twin", "metadata": {"ticket": 7, "tags": ["a", "b"]}';
[main::post($main::FAST, 'twin question', $more),
 main::post($main::GENERAL, 'twin question', "$more, \"assistantOverrides\": {}"),
 "GET /_mock/requests?n=2",
 "GET /session/$main::FAST", "GET /session/$main::GENERAL"]
--- error_code eval
[201, 201, 200, 200, 200]
--- response_body eval
my @ctx = (@main::SYS, @main::SEED, [user => 'twin question']);
my $e = ::echo(@ctx);
my %more = (name => 'c170-twin', metadata => { ticket => \7, tags => ['a', 'b'] });
my $up = ::upstream(model => 'echo', temperature => '0.2', max_tokens => 64,
                    messages => \@ctx);
[::whole(main::echo_chat($main::FAST, \@ctx, %more)),
 ::whole(main::echo_chat($main::GENERAL, \@ctx, %more)),
 ::mock_requests($up, $up),
 main::session_of($main::FAST, 'c170-12', $main::ECHO,
     [@main::SEED, [user => 'twin question'], [assistant => $e]]),
 main::session_of($main::GENERAL, 'c170-13', $main::ECHO,
     [@main::SEED, [user => 'twin question'], [assistant => $e]])]



=== TEST 4: ... both stored the same messages, chat row and session row; GET /chat shows the same chat and context
--- init
my $cols = q{c.name, c.input::text, c.messages::text, c.output::text, c.usage::text,
             c.status, c.prompt_count, c.history_from, c.history_to, c.metadata::text,
             c.assistant_id, c.assistant::text, c.previous_chat_id, c.created_at = c.updated_at,
             callhq.chat_context(c)};
my %row;
for my $s ($main::FAST, $main::GENERAL) {
    $row{$s} = CallHQ::Test::psql(qq{
        select string_agg(concat_ws('|', m.seq, m.role, m.content::text, m.raw, m.tokens), E'\\n'
                          order by m.seq)
          from callhq.messages m where m.session_id = '$s'})
      . "\n" . CallHQ::Test::psql(qq{select concat_ws('|', $cols, count(*) over ())
                                        from callhq.chats c where c.session_id = '$s'})
      . "\n" . CallHQ::Test::psql(qq{
        select concat_ws('|', s.next_seq, s.busy_chat is null, s.busy_until is null,
                         s.updated_at = (select c.created_at from callhq.chats c
                                          where c.session_id = s.id),
                         s.expires_at, s.history_epoch, s.status)
          from callhq.sessions s where s.id = '$s'});
}
Test::More::is($row{$main::FAST}, $row{$main::GENERAL},
               "$0 - TEST 4: the fast chat stored what the general one did");
Test::More::like($row{$main::FAST},
    qr/\A1\|user\|"seed question"\|.*\n2\|assistant\|"seed answer"\|[^\n]*\n3\|user\|"twin question"\|\{"role":"user","content":"twin question"\}\n4\|assistant\|"\[.*\]"\|\{.*\}\|\d+\nc170-twin\|"twin question"\|.*\|completed\|1\|1\|2\|.*\|1\n5\|t\|t\|t\|/s,
    "$0 - TEST 4: the turn at seq 3 and 4, tokens on the reply, history 1..2, next_seq 5, turn free");
CallHQ::Test::psql(qq{update callhq.chats set id = '$main::FAST_CHAT' where session_id = '$main::FAST';
                      update callhq.chats set id = '$main::GENERAL_CHAT' where session_id = '$main::GENERAL'});
--- request eval
["GET /chat/$main::FAST_CHAT", "GET /chat/$main::GENERAL_CHAT"]
--- response_body eval
my @ctx = (@main::SYS, @main::SEED, [user => 'twin question']);
my %more = (name => 'c170-twin', metadata => { ticket => \7, tags => ['a', 'b'] });
[::whole(main::echo_chat($main::FAST, \@ctx, id => $main::FAST_CHAT, %more)),
 ::whole(main::echo_chat($main::GENERAL, \@ctx, id => $main::GENERAL_CHAT, %more))]



=== TEST 5: bodies the fast path must not take get chat_begin's exact 400s
--- request eval
my $s = qq{"sessionId": "$main::ERRS"};
(my $nodash = $main::ERRS) =~ s/-//g;
["POST /chat\n{\"sessionId\": \"c170-not-a-uuid\", \"input\": \"x\"}",
 "POST /chat\n{\"sessionId\": \"$nodash\", \"input\": \"x\"}",
 "POST /chat\n{\"sessionId\": \"{$main::ERRS}\", \"input\": \"x\"}",
 "POST /chat\n{\"sessionId\": 17, \"input\": \"x\"}",
 "POST /chat\n{$s, \"input\": 42}",
 "POST /chat\n{$s, \"input\": null}",
 "POST /chat\n{$s}",
 "POST /chat\n{$s, \"input\": \"x\", \"name\": \"c170-" . ('7' x 36) . "\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"name\": \"c170-\\u00e9" . ('7' x 35) . "\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"name\": 7}",
 "POST /chat\n{$s, \"input\": \"x\", \"metadata\": [1, 2]}",
 "POST /chat\n{$s, \"input\": \"x\", \"metadata\": \"m\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"foo\": 1}",
 "POST /chat\n{$s, \"input\": \"x\", \"stream\": \"yes\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"assistantId\": \"$main::ECHO\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"assistantOverrides\": []}"]
--- error_code eval
[(400) x 16]
--- response_body eval
[::cerr(400, 'sessionId must be a UUID'),
 ::cerr(400, 'sessionId must be a UUID'),
 ::cerr(400, 'sessionId must be a UUID'),
 ::cerr(400, 'sessionId must be a UUID'),
 ::cerr(400, 'input must be a string or an array of messages'),
 ::cerr(400, 'input must not be null'),
 ::cerr(400, 'input is required'),
 ::cerr(400, 'name must be at most 40 characters'),
 ::cerr(400, 'name must be at most 40 characters'),
 ::cerr(400, 'name must be a string'),
 ::cerr(400, 'metadata must be an object'),
 ::cerr(400, 'metadata must be an object'),
 ::cerr(400, 'property foo should not exist'),
 ::cerr(400, 'stream must be a boolean'),
 ::cerr(400, 'assistantId cannot be used with sessionId; a session is tied to its assistant'),
 ::cerr(400, 'assistantOverrides must be an object')]



=== TEST 6: sessions the fast statements cannot serve: 404, 410 and 400 as chat_begin says them
--- request eval
[main::post($main::B_SESS, 'x'),
 main::post($main::MISSING, 'x'),
 main::post($main::COMPLETED, 'x'),
 main::post($main::EXPIRED, 'x'),
 main::post($main::NOMODEL_S, 'x'),
 main::post($main::NOASST, 'x'),
 main::post(uc $main::COMPLETED, 'x')]
--- error_code eval
[404, 404, 410, 410, 400, 400, 410]
--- response_body eval
[::cerr(404, "Session $main::B_SESS not found"),
 ::cerr(404, "Session $main::MISSING not found"),
 ::cerr(410, "Session $main::COMPLETED is completed; create a new session"),
 ::cerr(410, "Session $main::EXPIRED is completed; create a new session"),
 ::cerr(400, 'assistant model.model is required to chat'),
 ::cerr(400, "Session $main::NOASST has no assistant to chat with"),
 ::cerr(410, "Session $main::COMPLETED is completed; create a new session")]



=== TEST 7: an unknown API key with a fast body: 401 Invalid API key
--- more_headers
Authorization: Bearer cq_test_nobody
Content-Type: application/json
--- request eval
main::post($main::ERRS, 'x')
--- error_code: 401
--- response_body eval
::cerr(401, 'Invalid API key')



=== TEST 8: ... none of them wrote anything or kept a turn; the next fast chat of 14 goes at once
--- init
my $ids = join ', ', map { "'$_'" } $main::ERRS, $main::COMPLETED, $main::EXPIRED,
    $main::B_SESS, $main::NOMODEL_S, $main::NOASST;
Test::More::is(main::poll_sql(qq{select count(*) from callhq.sessions
                                  where id in ($ids) and busy_chat is not null}, '0'), '0',
               "$0 - TEST 8: no session's turn is held");
Test::More::is(CallHQ::Test::psql(qq{select count(*) from callhq.messages where session_id in ($ids)})
               . '/' . CallHQ::Test::psql(qq{select count(*) from callhq.chats where session_id in ($ids)}),
               '2/0', "$0 - TEST 8: only 14's seed is there, no chat");
Test::More::is(CallHQ::Test::psql(qq{select string_agg(concat_ws('|', next_seq, updated_at), ',' order by id)
                                      from callhq.sessions where id in ($ids)}),
               CallHQ::Test::psql(qq{select string_agg(concat_ws('|', case when id = '$main::ERRS' then 3 else 1 end,
                                                                 '2017-02-01 00:00:00+00'::timestamptz), ',' order by id)
                                      from callhq.sessions where id in ($ids)}),
               "$0 - TEST 8: next_seq and updated_at as they were");
--- config eval
::api_location('/', 'callhq_turn_timeout 0;') . $main::MODEL_LOCATIONS
--- request eval
main::post($main::ERRS, 'after the errors')
--- error_code: 201
--- response_body eval
::whole(main::echo_chat($main::ERRS, [@main::SYS, @main::SEED, [user => 'after the errors']]))



=== TEST 9: escapes: the input with \u00e9, \n, \", \\, \t, \u0001, \/ and a surrogate pair; the model's reply all escaped (ascii)
--- request eval
"POST /chat\n{\"sessionId\": \"$main::UNI\", \"input\": \"$main::UNI_JSON\"}"
--- error_code: 201
--- response_body eval
main::uni_chat(\@main::U1, $main::UE1)



=== TEST 10: ... the next turn: upstream got the stored turn decoded as it was written (the echo shows it)
--- request eval
main::post($main::UNI, 'and now?')
--- error_code: 201
--- response_body eval
main::uni_chat(\@main::U2, $main::UE2)



=== TEST 11: ... content, the raw history and the chat's input decode to the same text; GET /session shows it
--- init
Test::More::is(CallHQ::Test::psql(qq{
    select string_agg(encode(convert_to(m.content #>> '{}', 'UTF8'), 'hex') || '='
                      || encode(convert_to((m.raw::jsonb)->>'content', 'UTF8'), 'hex'), ','
                      order by m.seq)
      from callhq.messages m where m.session_id = '$main::UNI'}),
    join(',', map { main::hex_of($_) . '=' . main::hex_of($_) }
              $main::UNI_TEXT, $main::UE1, 'and now?', $main::UE2),
    "$0 - TEST 11: content and raw of the four messages");
Test::More::is(CallHQ::Test::psql(qq{
    select encode(convert_to(c.input #>> '{}', 'UTF8'), 'hex') || '='
           || encode(convert_to(c.output->0->>'content', 'UTF8'), 'hex')
      from callhq.chats c where c.session_id = '$main::UNI' and c.history_to is null}),
    main::hex_of($main::UNI_TEXT) . '=' . main::hex_of($main::UE1),
    "$0 - TEST 11: the first chat's input and output");
--- request eval
"GET /session/$main::UNI"
--- response_body eval
my $head = ::obj(id => $main::UNI, orgId => $::ORG_A, name => 'c170-1a', status => 'active',
                 assistantId => $main::ASCII, expirationSeconds => \86400,
                 expiresAt => '2099-01-01T00:00:00.000Z',
                 createdAt => '2017-02-01T00:00:00.000Z', updatedAt => $::TS);
main::chat_with_context($head, [[user => $main::UNI_TEXT], [assistant => $main::UE1],
                                [user => 'and now?'], [assistant => $main::UE2]])



=== TEST 12: webhooks: a fast chat of a session whose assistant has server.url, and of one without
--- init
CallHQ::Test::psql(qq{delete from callhq.webhook_outbox where session_id = '$main::HOOKED'});
--- request eval
[main::post($main::HOOKED, 'hook me'), main::post($main::UNHOOKED, 'quietly')]
--- error_code eval
[201, 201]
--- response_body eval
my @c1 = (@main::SYS, [user => 'hook me']);
my @c2 = (@main::SYS, [user => 'quietly']);
my $e = ::echo(@c1);
[::whole(::chat(input => 'hook me', sessionId => $main::HOOKED, assistantId => $main::HOOK,
                messages => \@c1, output => [[assistant => $e]], usage => ::usage(\@c1, $e))),
 ::whole(main::echo_chat($main::UNHOOKED, \@c2))]



=== TEST 13: ... chat.created and session.updated were queued in the chat's own transaction; none for the other
--- init
Test::More::is(CallHQ::Test::psql(qq{
    select string_agg(concat_ws('|', o.type, o.url, o.state,
                                o.xmin::text = c.xmin::text, o.xmin::text = s.xmin::text,
                                coalesce(o.payload->'message'->'chat'->>'id',
                                         o.payload->'message'->'session'->>'id')
                                  in (c.id::text, s.id::text),
                                o.payload->'message'->'session'->>'status'), ',' order by o.type)
      from callhq.webhook_outbox o, callhq.chats c, callhq.sessions s
     where o.session_id = '$main::HOOKED' and c.session_id = s.id and s.id = o.session_id}),
    'chat.created|http://127.0.0.1:9/t170/hook|pending|t|t|t,'
    . 'session.updated|http://127.0.0.1:9/t170/hook|pending|t|t|t|active',
    "$0 - TEST 13: the two events of the hooked session, written by the chat's transaction");
Test::More::is(CallHQ::Test::psql(qq{select count(*) from callhq.webhook_outbox
                                      where session_id = '$main::UNHOOKED'}), '0',
               "$0 - TEST 13: nothing queued for the session nobody listens to");
--- request eval
"GET /session/$main::HOOKED"
--- response_body eval
main::session_of($main::HOOKED, 'c170-1b', $main::HOOK,
    [[user => 'hook me'], [assistant => ::echo(@main::SYS, [user => 'hook me'])]])



=== TEST 14: two chats racing on a session: the second waits for the first's turn and sees its reply
--- init
main::chat_in_background("$main::TMP/c170-race", "id = '$main::RACE'",
                         qq{{"sessionId": "$main::RACE", "input": "first"}});
--- request eval
main::post($main::RACE, 'second')
--- timeout: 10
--- error_code: 201
--- response_body eval
my @c1 = (@main::SYS, [user => 'first']);
my @c2 = (@c1, [assistant => ::echo(@c1)], [user => 'second']);
my $e = ::echo(@c2);
::whole(::chat(input => 'second', sessionId => $main::RACE, assistantId => $main::RACEA,
               messages => \@c2, output => [[assistant => $e]], usage => ::usage(\@c2, $e)))



=== TEST 15: ... the first answered 201; the history is the two turns in order
--- init
my @c1 = (@main::SYS, [user => 'first']);
my $e = ::echo(@c1);
::background_answered("$main::TMP/c170-race", 201,
    ::whole(::chat(input => 'first', sessionId => $main::RACE, assistantId => $main::RACEA,
                   messages => \@c1, output => [[assistant => $e]], usage => ::usage(\@c1, $e))),
    "$0 - TEST 15: the first chat");
--- request eval
"GET /session/$main::RACE"
--- response_body eval
my @c1 = (@main::SYS, [user => 'first']);
my @c2 = (@c1, [assistant => ::echo(@c1)], [user => 'second']);
main::session_of($main::RACE, 'c170-1d', $main::RACEA,
    [[user => 'first'], [assistant => ::echo(@c1)],
     [user => 'second'], [assistant => ::echo(@c2)]])



=== TEST 16: a turn recorded while this chat takes the turn (row locked, history not in its snapshot): the history is read again
--- init
main::hold_session($main::STALE, 1.5);
--- request eval
main::post($main::STALE, 'after the racer')
--- timeout: 10
--- error_code: 201
--- response_body eval
::whole(main::echo_chat($main::STALE, [@main::SYS, [user => 'racer question'],
                                       [assistant => 'racer answer'],
                                       [user => 'after the racer']]))



=== TEST 17: ... the chat points at history 1..2 and its turn follows at 3 and 4
--- init
Test::More::is(main::hold_session_done($main::STALE), 0, "$0 - TEST 17: the holder committed");
Test::More::is(CallHQ::Test::psql(qq{
    select concat_ws('|', c.history_from, c.history_to, s.next_seq, s.busy_chat is null,
                     (select string_agg(m.seq::text, ',' order by m.seq) from callhq.messages m
                       where m.session_id = s.id))
      from callhq.chats c join callhq.sessions s on s.id = c.session_id
     where s.id = '$main::STALE'}), '1|2|5|t|1,2,3,4',
    "$0 - TEST 17: history_from, history_to, next_seq, turn, seqs");
--- request eval
"GET /session/$main::STALE"
--- response_body eval
main::session_of($main::STALE, 'c170-1e', $main::ECHO,
    [[user => 'racer question'], [assistant => 'racer answer'], [user => 'after the racer'],
     [assistant => ::echo(@main::SYS, [user => 'racer question'], [assistant => 'racer answer'],
                          [user => 'after the racer'])]])



=== TEST 18: the model answers 500: 502, nothing recorded
--- request eval
[main::post($main::FAIL, 'fail please'), "GET /session/$main::FAIL", "GET /chat?sessionId=$main::FAIL"]
--- error_code eval
[502, 200, 200]
--- response_body eval
[::cerr(502, 'model upstream answered 500'),
 main::session_of($main::FAIL, 'c170-1f', $main::FAILA, \@main::SEED,
                  updatedAt => '2017-02-01T00:00:00.000Z'),
 ::chat_list([])]
--- error_log eval
qr/\[error\] .*callhq: model failed for chat [0-9a-f-]{36} with status 500/
--- no_error_log
[crit]
[alert]



=== TEST 19: the model times out: 504, nothing recorded
--- config eval
::api_location('/') . ::model_locations(read_timeout => '1s')
--- request eval
[main::post($main::SLOW, 'too slow'), "GET /session/$main::SLOW", "GET /chat?sessionId=$main::SLOW"]
--- timeout: 10
--- error_code eval
[504, 200, 200]
--- response_body eval
[::cerr(504, 'model upstream timed out'),
 main::session_of($main::SLOW, 'c170-20', $main::SLOWA, \@main::SEED,
                  updatedAt => '2017-02-01T00:00:00.000Z'),
 ::chat_list([])]
--- error_log eval
qr/\[error\] .*callhq: model timed out for chat/
--- no_error_log
[crit]
[alert]



=== TEST 20: ... both turns were given back, nothing was written
--- init
Test::More::is(main::poll_sql(qq{select string_agg(concat_ws('|', busy_chat is null, busy_until is null, next_seq), ',' order by id)
                                  from callhq.sessions where id in ('$main::FAIL', '$main::SLOW')},
                              't|t|3,t|t|3'),
               't|t|3,t|t|3', "$0 - TEST 20: turns free, next_seq as it was");
Test::More::is(CallHQ::Test::psql(qq{select (select count(*) from callhq.messages
                                              where session_id in ('$main::FAIL', '$main::SLOW'))
                                             || '/' || (select count(*) from callhq.chats
                                              where session_id in ('$main::FAIL', '$main::SLOW'))}),
               '4/0', "$0 - TEST 20: only the seeds, no chat");
--- config eval
::api_location('/', 'callhq_turn_timeout 0;') . $main::MODEL_LOCATIONS
--- request eval
main::post($main::FAIL, 'fail again')
--- error_code: 502
--- response_body eval
::cerr(502, 'model upstream answered 500')
--- error_log eval
qr/\[error\] .*callhq: model failed for chat [0-9a-f-]{36} with status 500/
--- no_error_log
[crit]
[alert]



=== TEST 21: HOT: a fast chat updates its session in place
--- http_config eval
$main::COUNTED_HTTP
--- init
CallHQ::Test::psql(q{vacuum callhq.sessions});
$main::UPD0 = main::settled(sub { 1 }) && main::table_upd();
--- request eval
main::post($main::HOT, 'in place')
--- error_code: 201
--- response_body eval
::whole(main::echo_chat($main::HOT, [@main::SYS, [user => 'in place']]))



=== TEST 22: ... two updates of callhq.sessions, both HOT
--- init
my $d;
main::settled(sub { $d = main::delta(main::table_upd(), $main::UPD0); $d->{upd} >= 2 });
Test::More::is_deeply($d, { upd => 2, hot => 2 }, "$0 - TEST 22: sessions updates, HOT updates");
--- request eval
"GET /session/$main::HOT"
--- response_body eval
main::session_of($main::HOT, 'c170-21', $main::ECHO,
    [[user => 'in place'], [assistant => ::echo(@main::SYS, [user => 'in place'])]])



=== TEST 23: a client leaves while its chat waits to take the turn (the session's row locked): the turn, taken after it left, goes back
--- init
main::hold_session($main::LEFT, $ENV{TEST_NGINX_USE_VALGRIND} ? 8 : 2);
Test::More::ok(main::post_and_leave($main::LEFT, $ENV{TEST_NGINX_USE_VALGRIND} ? 6 : 1.5),
               "$0 - TEST 23: sent and left");
Test::More::is(main::hold_session_done($main::LEFT), 0, "$0 - TEST 23: the holder committed");
Test::More::is(main::poll_sql(qq{
    select busy_chat is null from callhq.sessions where id = '$main::LEFT'}, 't'), 't',
    "$0 - TEST 23: the turn went back");
--- request eval
main::post($main::LEFT, 'after the one who left')
--- error_code: 201
--- response_body eval
::whole(main::echo_chat($main::LEFT, [@main::SYS, [user => 'racer question'],
                                      [assistant => 'racer answer'],
                                      [user => 'after the one who left']]))
--- error_log
client left as its chat began, releasing the session's turn
--- no_error_log
[alert]
[crit]



=== TEST 24: callhq.chat_head builds, as text, what jsonb prints for every chat of the database (nulls, escapes, nested metadata, an inline assistant)
--- init
CallHQ::Test::psql(q{
    insert into callhq.chats (id, org_id, assistant, name, input, output, status, usage, metadata)
    select '17000000-0000-4000-8000-0000000000d1', k.org_id,
           '{"model": {"model": "m", "messages": [{"role": "system", "content": "caf\u00e9"}]},
             "server": {"secret": "whsec_abcdefgh1234"}}',
           E'na"me \\ caf\u00e9 \t x', '[{"role": "user", "content": "a\u0001b \ud83d\ude00 \/"}]',
           '[{"role": "assistant", "content": "ok"}]', 'incomplete',
           '{"promptTokens": 1, "completionTokens": 2}',
           '{"b": [1, 2.50, null], "a": {"z": null, "\u00e9": "x"}, "aa": true}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a')
    on conflict (id) do nothing});
Test::More::is(CallHQ::Test::psql(q{
    select count(*) filter (where callhq.chat_head(c) is distinct from
        (jsonb_strip_nulls(jsonb_build_object(
             'id', c.id, 'orgId', c.org_id, 'assistantId', c.assistant_id,
             'sessionId', c.session_id, 'previousChatId', c.previous_chat_id,
             'name', c.name, 'status', c.status,
             'createdAt', callhq.ts(c.created_at), 'updatedAt', callhq.ts(c.updated_at)))
         || case when jsonb_typeof(c.assistant) <> 'null'
                 then jsonb_build_object('assistant', callhq.assistant_shown(c.assistant)) else '{}' end
         || case when jsonb_typeof(c.input) <> 'null'
                 then jsonb_build_object('input', c.input) else '{}' end
         || case when jsonb_typeof(c.output) <> 'null'
                 then jsonb_build_object('output', c.output) else '{}' end
         || case when jsonb_typeof(c.usage) <> 'null'
                 then jsonb_build_object('usage', c.usage) else '{}' end
         || case when jsonb_typeof(c.metadata) <> 'null'
                 then jsonb_build_object('metadata', c.metadata) else '{}' end)::text)
           || '/' || (count(*) > 10)::text
      from callhq.chats c}), '0/true', "$0 - TEST 24: chats whose head differs / more than ten chats");
--- request eval
"GET /chat/17000000-0000-4000-8000-0000000000d1"
--- error_code: 200
--- response_body_like eval
qr/^\{"id": "17000000-0000-4000-8000-0000000000d1", "name": "na\\"me [^"]*", "input": \[\{"role": "user", "content": "a\\u0001b [^"]* \/"\}\], "orgId": "[^"]+", "usage": \{"promptTokens": 1, "completionTokens": 2\}, "output": \[\{"role": "assistant", "content": "ok"\}\], "status": "incomplete", "metadata": \{"a": \{"z": null, "[^"]+": "x"\}, "b": \[1, 2.50, null\], "aa": true\}, "assistant": \{/s



=== TEST 25: the answer's chat is built in C (not by callhq.chat_head) when nothing in it needs jsonb's printing: a name, escapes jsonb writes as they are, raw UTF-8, usage
--- request eval
main::post($main::HEADS, 'q \"x\" back\\\\slash\nnew\ttab caf' . "\xc3\xa9",
           '"name": "c170 h' . "\xc3\xa9" . 'ad"')
--- error_code: 201
--- response_body eval
::whole(main::echo_chat($main::HEADS,
        [@main::SYS, [user => "q \"x\" back\\slash\nnew\ttab caf\xc3\xa9"]],
        name => "c170 h\xc3\xa9ad"))



=== TEST 26: ... GET /chat (callhq.chat_head in PostgreSQL) lists the same chat, byte for byte
--- request eval
"GET /chat?sessionId=$main::HEADS"
--- error_code: 200
--- response_body eval
::chat_list([main::echo_chat($main::HEADS,
        [@main::SYS, [user => "q \"x\" back\\slash\nnew\ttab caf\xc3\xa9"]],
        name => "c170 h\xc3\xa9ad")])



=== TEST 27: the worker keeps an assistant's model and prompts by its row's version: a PATCH between two chats, and the second is sent the new prompt
--- request eval
[main::post($main::EDITED, 'before'),
 "PATCH /assistant/17000000-0000-4000-8000-000000000009\n"
 . '{"model": {"provider": "openai", "model": "echo", "messages": [{"role": "system", "content": "SYS-170-NEW"}]}}',
 main::post($main::EDITED, 'after')]
--- error_code eval
[201, 200, 201]
--- response_body_like eval
[qr/"output": \[\{"role": "assistant", "content": "\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-170-OLD\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"before\\"\}\]"\}\]/,
 qr/SYS-170-NEW/,
 qr/"output": \[\{"role": "assistant", "content": "\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-170-NEW\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"before\\"\},.*\\"after\\"\}\]"\}\], .*"messages": \[\{"role":"system","content":"SYS-170-NEW"\},/s]
