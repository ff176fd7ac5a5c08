# A chat waiting for its session's turn is woken, it does not poll.
#
# A chat that finds its session busy waits in its worker's wait list
# (ngx_http_callhq_wait.c) and marks the session (sessions.turn_waiters).
# When a chat of the same worker gives the turn back, the first waiter is
# woken at once ("turn of session ... given back here"); when another
# worker or node does, its record or release notifies callhq_turn, and the
# listener of each worker wakes its first waiter ("... notified on
# callhq_turn"). A waiter still looks again every callhq_turn_recheck, and
# answers 409 after callhq_turn_timeout.
#
# As in t/130-chat-turns.t, the first chat of a pair runs in a child
# process (::chat_in_background, which returns once that chat holds the
# turn), the block's own request is the second one. Their model is
# "digest+slow-1500": a second and a half late, its reply a digest of the
# messages it got, so the second reply shows the first was in its context.
# Another node holding the turn is a lease set with SQL, given back with
# callhq.chat_release (as a node's chat does) from a child process.
#
# Blocks whose name says "two workers" run nginx with a master and two
# workers; the others with one process. The log lines are asserted, and
# times only against bounds a loaded machine keeps (a 2-core machine at a
# load of 10): every block looks again only each 10 s
# (callhq_turn_recheck), so a chat that polled instead of being woken
# would take 10 s more, far past any bound, while one woken takes its
# model's 1.5 s and whatever the machine's load adds.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

our $RECHECK = 'callhq_turn_recheck 10s;';

sub config_with {
    my $more = shift;
    return api_location('/', $RECHECK, $more // ())
           . model_locations(read_timeout => '5s');
}

our $CONFIG = config_with();

callhq_defaults(config => $CONFIG, valgrind_timeout => 15, block => sub {
    my $block = shift;
    if ($block->name =~ /two workers/) {
        Test::Nginx::Socket::master_on();
        Test::Nginx::Socket::workers(2);
    } else {
        Test::Nginx::Socket::master_off();
        Test::Nginx::Socket::workers(1);
    }
});

# Ids 13500000-0000-4000-8000-0000000000NN (system prompt SYS-135):
#   01  c135-slow (digest+slow-1500)     02  c135-echo (echo)
#   11  two chats, fast path (01)        12  two chats, general path (01)
#   13  past the bound (02)              14  another node's turn (02)
#   15  two chats, two workers (01)      16  three chats (01)
our %ASST = ('01' => 'digest+slow-1500', '02' => 'echo');
our %SESS = ('11' => '01', '12' => '01', '13' => '02', '14' => '02',
             '15' => '01', '16' => '01');

sub id { sprintf '13500000-0000-4000-8000-0000000000%s', shift }

psql(q{
    delete from callhq.sessions where id::text like '13500000-0000-4000-8000-%';
    delete from callhq.chats
     where id::text like '13500000-0000-4000-8000-%'
        or assistant_id::text like '13500000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '13500000-0000-4000-8000-%';
} . join('', map { qq{
    insert into callhq.assistants (id, org_id, name, model)
    select '@{[ id($_) ]}', k.org_id, 'c135-$_',
           '{"provider": "openai", "model": "$ASST{$_}",
             "messages": [{"role": "system", "content": "SYS-135"}]}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %ASST) . join('', map { qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, created_at, updated_at)
    select '@{[ id($_) ]}', k.org_id, '@{[ id($SESS{$_}) ]}', 'c135-$_', 86400,
           '2099-01-01T00:00:00Z', '2013-02-01T00:00:00Z', '2013-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %SESS));

our ($SLOW, $ECHO) = map { id($_) } qw(01 02);
our ($FAST, $GENERAL, $BOUND, $NODE, $WORKERS, $THREE) = map { id($_) } qw(11 12 13 14 15 16);

our @SYS = ([system => 'SYS-135']);
our $TMP = $ENV{CALLHQ_TEST_TMP} // '/tmp';

# The general path: a body the two-statement path leaves to chat_begin.
our $GENERAL_MORE = '"assistantOverrides": {}';

sub post {
    my ($sid, $input, $more) = @_;
    return "POST /chat\n{\"sessionId\": \"$sid\", \"input\": \"$input\""
           . ($more ? ", $more" : '') . '}';
}

sub body_of { my $r = post(@_); $r =~ s/^[^\n]*\n//; return $r }

sub slow_chat {
    my ($sid, $asst, $ctx, $reply) = @_;
    return ::whole(::chat(input => $ctx->[-1][1], sessionId => $sid, assistantId => $asst,
                          messages => $ctx, output => [[assistant => $reply]],
                          usage => ::usage($ctx, $reply)));
}

# "first" then "second" (then "third") on a session with the slow model.
our @O1 = (@SYS, [user => 'first']);
our $OD1 = ::digest(@O1);
our @O2 = (@O1, [assistant => $OD1], [user => 'second']);
our $OD2 = ::digest(@O2);
our @O3 = (@O2, [assistant => $OD2], [user => 'third']);
our $OD3 = ::digest(@O3);

sub session_of {
    my ($sid, $name, $asst, @msgs) = @_;
    return ::session_body({ id => $sid, orgId => $::ORG_A, name => $name,
                            status => 'active', assistantId => $asst,
                            expirationSeconds => \86400,
                            expiresAt => '2099-01-01T00:00:00.000Z',
                            createdAt => '2013-02-01T00:00:00.000Z',
                            updatedAt => $::TS }, @msgs);
}

# Seconds between the chats' records, in the order they were recorded.
sub record_gaps {
    my $sid = shift;
    my $out = CallHQ::Test::psql(qq{
        select extract(epoch from created_at - lag(created_at) over (order by created_at))
          from callhq.chats where session_id = '$sid' order by created_at});
    return grep { length } split /\n/, $out;
}

# Another node holds the session's turn: a lease of an hour.
sub hold_turn {
    my $sid = shift;
    CallHQ::Test::psql(qq{update callhq.sessions
                             set busy_chat = gen_random_uuid(),
                                 busy_until = now() + interval '1 hour',
                                 turn_waiters = false
                           where id = '$sid'});
}

# ... and gives it back after $delay seconds, as its chat would
# (callhq.chat_release), from a child process.
my %releasers;

sub release_turn_later {
    my ($sid, $delay) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        Time::HiRes::sleep($delay);
        eval {
            CallHQ::Test::psql(qq{
                select callhq.chat_release(jsonb_build_object(
                           'sessionId', s.id, 'chatId', s.busy_chat))
                  from callhq.sessions s where s.id = '$sid'});
        };
        POSIX::_exit(0);
    }
    $releasers{$sid} = $pid;
}

sub release_turn_done { my $pid = delete $releasers{shift()}; waitpid $pid, 0 if $pid }

# nginx accepts connections (it starts slowly under valgrind), and its
# workers' listeners (LISTEN callhq_turn) are connected when $listeners
sub wait_ready {
    my ($listeners) = @_;
    my $port = Test::Nginx::Util::server_port_for_client();
    for (1 .. 300) {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
            and last;
        Time::HiRes::sleep(0.1);
    }
    return unless $listeners;
    for (1 .. 300) {
        last if CallHQ::Test::psql(q{select count(*) from pg_stat_activity
            where application_name = 'callhq_webhook_listen'}) >= $listeners;
        Time::HiRes::sleep(0.1);
    }
}

# POST /chat timed from the test, not through the block's request.
sub timed_post {
    my ($sid, $input) = @_;
    my $port = Test::Nginx::Util::server_port_for_client();
    wait_ready();
    my $t0 = Time::HiRes::time();
    my $res = HTTP::Tiny->new(timeout => 20)->post(
        "http://127.0.0.1:$port/chat",
        { headers => { Authorization => 'Bearer cq_test_a',
                       'Content-Type' => 'application/json' },
          content => body_of($sid, $input) });
    return ($res, Time::HiRes::time() - $t0);
}

run_tests();

__DATA__

=== TEST 1: two chats of a session at once: the second is woken as the first gives the turn back
--- init
main::chat_in_background("$main::TMP/c135-fast", "id = '$main::FAST'",
                         main::body_of($main::FAST, 'first'));
--- request eval
main::post($main::FAST, 'second')
--- timeout: 15
--- error_code: 201
--- response_body eval
main::slow_chat($main::FAST, $main::SLOW, \@main::O2, $main::OD2)
--- error_log eval
qr/callhq: turn of session \Q$main::FAST\E given back here, waking a waiting chat/



=== TEST 2: ... the first answered 201; turns in order; the second started at once, not a second later
--- init
::background_answered("$main::TMP/c135-fast", 201,
    main::slow_chat($main::FAST, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 2: the first chat");
my @gaps = main::record_gaps($main::FAST);
Test::More::is(scalar @gaps, 1, "$0 - TEST 2: two chats recorded");
# the second's own model call takes 1.5 s; the 10 s re-check would add up
# to 10 s
Test::More::cmp_ok($gaps[0] // 99, '<', 6, "$0 - TEST 2: the second chat was not left waiting");
Test::More::is(CallHQ::Test::psql(qq{
    select coalesce(busy_chat::text, 'free') || ' ' || turn_waiters
      from callhq.sessions where id = '$main::FAST'}),
    'free false', "$0 - TEST 2: the session is free and nobody waits");
--- request eval
"GET /session/$main::FAST"
--- response_body eval
main::session_of($main::FAST, 'c135-11', $main::SLOW,
                 [user => 'first'], [assistant => $main::OD1],
                 [user => 'second'], [assistant => $main::OD2])



=== TEST 3: the general path (callhq.chat_begin) waits and is woken the same way
--- init
main::chat_in_background("$main::TMP/c135-general", "id = '$main::GENERAL'",
                         main::body_of($main::GENERAL, 'first', $main::GENERAL_MORE));
--- request eval
main::post($main::GENERAL, 'second', $main::GENERAL_MORE)
--- timeout: 15
--- error_code: 201
--- response_body eval
main::slow_chat($main::GENERAL, $main::SLOW, \@main::O2, $main::OD2)
--- error_log eval
qr/callhq: turn of session \Q$main::GENERAL\E given back here, waking a waiting chat/



=== TEST 4: ... the first answered 201; turns in order
--- init
::background_answered("$main::TMP/c135-general", 201,
    main::slow_chat($main::GENERAL, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 4: the first chat");
my @gaps = main::record_gaps($main::GENERAL);
Test::More::cmp_ok($gaps[0] // 99, '<', 6, "$0 - TEST 4: the second chat was not left waiting");
--- request eval
"GET /session/$main::GENERAL"
--- response_body eval
main::session_of($main::GENERAL, 'c135-12', $main::SLOW,
                 [user => 'first'], [assistant => $main::OD1],
                 [user => 'second'], [assistant => $main::OD2])



=== TEST 5: a turn held past callhq_turn_timeout: 409, not before; the waiting chat marked the session
--- config eval
main::config_with('callhq_turn_timeout 1500ms;')
--- init
main::hold_turn($main::BOUND);
my ($res, $took) = main::timed_post($main::BOUND, 'too late');
Test::More::is($res->{status}, 409, "$0 - TEST 5: 409");
Test::More::is($res->{content}, ::cerr(409, "Session $main::BOUND is busy with another chat"),
               "$0 - TEST 5: the 409's body");
Test::More::cmp_ok($took, '>=', 1.45, "$0 - TEST 5: not before callhq_turn_timeout");
# a wait that went on to the 10 s re-check would take 10 s
Test::More::cmp_ok($took, '<', 8, "$0 - TEST 5: not long after it");
Test::More::is(CallHQ::Test::psql(qq{
    select turn_waiters from callhq.sessions where id = '$main::BOUND'}),
    't', "$0 - TEST 5: the session is marked as waited for");
--- request eval
"GET /chat?sessionId=$main::BOUND"
--- response_body eval
::chat_list([])



=== TEST 6: another node gives the turn back: two workers, the waiting chat is woken by NOTIFY callhq_turn
--- config eval
main::config_with('callhq_turn_timeout 20s;')
--- init
main::wait_ready(2);
main::hold_turn($main::NODE);
main::release_turn_later($main::NODE, 2.5);
--- request eval
main::post($main::NODE, 'after the other node')
--- timeout: 15
--- error_code: 201
--- response_body eval
my @ctx = (@main::SYS, [user => 'after the other node']);
main::slow_chat($main::NODE, $main::ECHO, \@ctx, ::echo(@ctx))
--- error_log eval
qr/callhq: turn of session \Q$main::NODE\E notified on callhq_turn, waking a waiting chat/



=== TEST 7: ... the release notified once and cleared the mark; the chat holds no turn
--- init
main::release_turn_done($main::NODE);
Test::More::is(CallHQ::Test::psql(qq{
    select coalesce(busy_chat::text, 'free') || ' ' || turn_waiters
      from callhq.sessions where id = '$main::NODE'}),
    'free false', "$0 - TEST 7: the session is free and nobody waits");
--- config eval
$main::CONFIG
--- request eval
"GET /session/$main::NODE"
--- response_body eval
my @ctx = (@main::SYS, [user => 'after the other node']);
main::session_of($main::NODE, 'c135-14', $main::ECHO,
                 [user => 'after the other node'], [assistant => ::echo(@ctx)])



=== TEST 8: two chats at once with two workers: the second is woken, in its worker or by NOTIFY
--- init
main::chat_in_background("$main::TMP/c135-workers", "id = '$main::WORKERS'",
                         main::body_of($main::WORKERS, 'first'));
--- request eval
main::post($main::WORKERS, 'second')
--- timeout: 15
--- error_code: 201
--- response_body eval
main::slow_chat($main::WORKERS, $main::SLOW, \@main::O2, $main::OD2)
--- error_log eval
qr/callhq: turn of session \Q$main::WORKERS\E (?:given back here|notified on callhq_turn), waking a waiting chat/



=== TEST 9: ... the first answered 201; turns in order
--- init
::background_answered("$main::TMP/c135-workers", 201,
    main::slow_chat($main::WORKERS, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 9: the first chat");
--- request eval
"GET /session/$main::WORKERS"
--- response_body eval
main::session_of($main::WORKERS, 'c135-15', $main::SLOW,
                 [user => 'first'], [assistant => $main::OD1],
                 [user => 'second'], [assistant => $main::OD2])



=== TEST 10: three chats at once: one waiter woken per turn given back, the last waits again
--- init
main::chat_in_background("$main::TMP/c135-three", "id = '$main::THREE'",
                         main::body_of($main::THREE, 'first'));
main::chat_in_background("$main::TMP/c135-three-2", "id = '$main::THREE'",
                         main::body_of($main::THREE, 'second'));
# the second is waiting (its take marked the session) before the third
for (1 .. 400) {
    last if CallHQ::Test::psql("select turn_waiters from callhq.sessions"
                               . " where id = '$main::THREE'") eq 't';
    Time::HiRes::sleep(0.025);
}
Time::HiRes::sleep(0.1);
--- request eval
main::post($main::THREE, 'third')
--- timeout: 20
--- error_code: 201
--- response_body eval
qr/"status": "completed"/
--- grep_error_log eval
qr/turn of session \Q$main::THREE\E given back here, waking a waiting chat/
--- grep_error_log_out eval
"turn of session $main::THREE given back here, waking a waiting chat\n" x 2



=== TEST 11: ... all three answered 201, the history is three whole pairs
--- init
::background_answered("$main::TMP/c135-three", 201,
    main::slow_chat($main::THREE, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 11: the first chat");
::background_answered("$main::TMP/c135-three-2", 201, qr/"status": "completed"/,
    "$0 - TEST 11: the second chat");
Test::More::is(CallHQ::Test::psql(qq{
    select string_agg(role || ':' || coalesce(content #>> '{}', ''), ' ' order by seq)
      from callhq.messages where session_id = '$main::THREE' and role = 'user'}),
    'user:first user:second user:third', "$0 - TEST 11: in the order they came");
Test::More::is(CallHQ::Test::psql(qq{
    select count(*) from callhq.messages where session_id = '$main::THREE'}),
    6, "$0 - TEST 11: three pairs");
--- request eval
"GET /session/$main::THREE"
--- response_body eval
main::session_of($main::THREE, 'c135-16', $main::SLOW,
                 [user => 'first'], [assistant => $main::OD1],
                 [user => 'second'], [assistant => $main::OD2],
                 [user => 'third'], [assistant => $main::OD3])
