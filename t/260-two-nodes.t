# Two nginx nodes on one PostgreSQL, as behind a load balancer: clients
# race on the same sessions through both, and nothing a node keeps to
# itself (its workers' turns in memory, its history cache, its webhook
# dispatcher, its expiry sweeper) breaks what the API promises.
#
# Two nginx instances (separate prefixes in /tmp, two workers each, each
# with its own history cache), started here, not by Test::Nginx; one
# database, the mock model ("digest+slow-20": the reply is a digest of
# every message the model got, so a reply shows which history it saw) and
# one webhook receiver (t/mock/webhook_receiver.py).
#
#   sessions   4, created alternately through node A and node B
#   clients    8 processes, 2 on each session, 6 chats each: client c's
#              chat k goes through node (c div 4 + k) mod 2, so the two
#              clients of a session are always on different nodes; every
#              third chat streamed; all 48 chats race
#
# Then:
#   - every chat answered (201, or a whole stream);
#   - exactly once: each session holds 2 messages per chat, every input
#     once, user and assistant alternating; each chat id answered is one
#     row of callhq.chats, of its session, completed;
#   - the race is real: chats waited for a turn that the other node gave
#     back (its NOTIFY woke them: "notified on callhq_turn" in the log);
#   - turn order: each client's chats appear in the order it sent them,
#     and every reply is the digest of the system prompt and the whole
#     history before it (a chat that ran beside another, or a node that
#     used a stale cached history, would have a reply of a shorter one);
#   - no turn left taken, nobody marked as waiting;
#   - webhooks once: 4 session.created and 48 chat.created, each webhook-id
#     delivered once, signed, though both nodes' dispatchers (four
#     workers) claim events; every outbox row delivered;
#   - expiry once: 6 sessions that expire while both nodes' sweepers run
#     (every second) each send one session.updated, and are completed;
#   - neither node logged an error.
#
# make test runs it twice: on PostgreSQL, then in its PgBouncer pass
# (CALLHQ_TEST_PGBOUNCER: both nodes' pools through PgBouncer in
# transaction mode, callhq_postgres_prepare off, LISTEN direct).

use strict;
use warnings;
use Test::More;
use lib 't';
use CallHQ::Test qw(expect chat webhook);
use Digest::SHA qw(sha256_hex);
use File::Temp ();
use HTTP::Tiny ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);

our $R_PORT = ::start_receiver('--secret', $::WH_SECRET,
                               '--pg', $ENV{TEST_NGINX_PG_CONNINFO});
our $R = "http://127.0.0.1:$R_PORT";
our $SYS = 'SYS-230';
our $SESSIONS = 4;
our $CLIENTS = 8;
our $CHATS = 6;
our $EXPIRING = 6;

sub id { sprintf '23000000-0000-4000-8000-0000000000%s', shift }

our ($ASST, $EXPIRY_ASST) = (id('01'), id('02'));

psql(qq{
    delete from callhq.webhook_outbox where url like '%/t230/%';
    delete from callhq.sessions where assistant_id::text like '23000000-0000-4000-8000-%';
    delete from callhq.chats where assistant_id::text like '23000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '23000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, server, server_messages)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb, v.server::jsonb, v.events::jsonb
      from callhq.api_keys k,
           (values ('$ASST', 't230-race',
                    '{"provider": "openai", "model": "digest+slow-20",
                      "messages": [{"role": "system", "content": "$SYS"}]}',
                    '{"url": "$R/t230/race", "secret": "$::WH_SECRET"}',
                    '["session.created", "chat.created"]'),
                   ('$EXPIRY_ASST', 't230-expiry',
                    '{"provider": "openai", "model": "echo"}',
                    '{"url": "$R/t230/expiry", "secret": "$::WH_SECRET"}',
                    '["session.updated"]'))
           v(id, name, model, server, events)
     where k.key_hash = sha256('cq_test_a');
});


# ----------------------------------------------------------- two nodes

our %NODE;      # name => {dir, port}

sub start_node {
    my $name = shift;
    my $dir = File::Temp::tempdir("callhq-node$name-XXXXXX", TMPDIR => 1,
                                  CLEANUP => 1);
    chmod 0755, $dir;
    mkdir "$dir/$_" for qw(conf logs tmp);
    my $port = ::free_tcp_port();
    my $user = $> == 0 ? 'user root;' : '';
    # make test's PgBouncer pass: statements unnamed, LISTEN direct
    my $pgbouncer = $ENV{CALLHQ_TEST_PGBOUNCER}
        ? qq{callhq_postgres_prepare off;\n    }
          . qq{callhq_webhook_listen "$ENV{TEST_NGINX_PG_DIRECT}";}
        : '';
    open my $fh, '>', "$dir/conf/nginx.conf" or die "$!\n";
    print $fh <<"_EOC_";
load_module $ENV{TEST_NGINX_LOAD_MODULES};
$user
daemon on;
master_process on;
worker_processes 2;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    callhq_postgres "$ENV{TEST_NGINX_PG_CONNINFO}";
    callhq_postgres_connect_timeout 30s;
    $pgbouncer
    callhq_webhook_allow 127.0.0.1;
    callhq_webhook_interval 50ms;
    callhq_webhook_backoff 100ms 400ms;
    callhq_webhook_sweep_interval 1s;
    server {
        listen 127.0.0.1:$port;
        location / {
            callhq_api;
            callhq_model_location /_model;
        }
        location = /_model {
            internal;
            proxy_pass http://127.0.0.1:$ENV{TEST_NGINX_MOCK_PORT}/v1/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
        location = /_webhooks { callhq_webhook_status; }
    }
}
_EOC_
    close $fh;
    system('/usr/sbin/nginx', '-p', "$dir/", '-c', "$dir/conf/nginx.conf",
           '-e', "$dir/logs/error.log") == 0
        or die "node $name did not start\n";
    $NODE{$name} = { dir => $dir, port => $port };
}

sub node_pid {
    my $name = shift;
    open my $fh, '<', "$NODE{$name}{dir}/logs/nginx.pid" or return undef;
    my $pid = <$fh>;
    return $pid && $pid =~ /^(\d+)/ ? $1 : undef;
}

sub stop_nodes {
    for my $name (sort keys %NODE) {
        my $pid = node_pid($name) // next;
        kill 'QUIT', $pid;
        for (1 .. 200) {
            last unless kill 0, $pid;
            sleep 0.05;
        }
    }
}

END {
    local $?;
    stop_nodes();
}

start_node($_) for qw(A B);
our @NODES = qw(A B);

my $http = HTTP::Tiny->new(timeout => 60);
my %H = ('Authorization' => 'Bearer cq_test_a',
         'Content-Type' => 'application/json');

sub api {
    my ($node, $method, $path, $body) = @_;
    my $res = $http->request($method, "http://127.0.0.1:$NODE{$node}{port}$path",
                             { headers => \%H,
                               defined $body ? (content => $body) : () });
    return $res;
}

# every node answers before the race
for my $name (@NODES) {
    my $ok;
    for (1 .. 100) {
        my $res = api($name, 'GET', '/assistant?limit=1');
        $ok = $res->{status} == 200 and last;
        sleep 0.1;
    }
    ok($ok, "node $name answers");
}


# ------------------------------------------------------------ sessions

my $json = JSON::PP->new->canonical;
our @SID;
for my $s (0 .. $SESSIONS - 1) {
    my $res = api($NODES[$s % 2], 'POST', '/session',
                  qq{{"assistantId": "$ASST", "name": "t230-$s"}});
    is($res->{status}, 201, "session $s created through node $NODES[$s % 2]");
    push @SID, $json->decode($res->{content})->{id};
}


# ------------------------------------------------------------ the race

# Each client writes one line per chat to its file:
#   <k> <node> <status> <chat id> <ok|bad>
my $out = File::Temp::tempdir('callhq-t230-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $t0 = time;
my @kids;
for my $c (0 .. $CLIENTS - 1) {
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        my $sid = $SID[$c % $SESSIONS];
        open my $log, '>', "$out/client-$c" or POSIX::_exit(1);
        for my $k (0 .. $CHATS - 1) {
            my $node = $NODES[(int($c / $SESSIONS) + $k) % 2];
            my $stream = $k % 3 == 2 ? ', "stream": true' : '';
            my $res = api($node, 'POST', '/chat',
                          qq{{"sessionId": "$sid", "input": "c$c-$k"$stream}});
            my ($id, $good) = ('-', 'bad');
            if ($stream && $res->{status} == 200) {
                my @ev = map { $json->decode($_) }
                         $res->{content} =~ /^data: (\{.*\})$/mg;
                $id = $ev[0]{id} if @ev;
                $good = 'ok' if @ev && !grep { $_->{id} ne $id } @ev;
            } elsif (!$stream && $res->{status} == 201) {
                my $chat = $json->decode($res->{content});
                $id = $chat->{id};
                $good = 'ok' if $chat->{status} eq 'completed';
            }
            print $log "$k $node $res->{status} $id $good\n";
        }
        close $log;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid $_, 0 for @kids;
my $took = time - $t0;
diag(sprintf "%d chats on %d sessions through 2 nodes in %.1f s",
     $CLIENTS * $CHATS, $SESSIONS, $took);

my (%answered, @bad);
for my $c (0 .. $CLIENTS - 1) {
    open my $fh, '<', "$out/client-$c" or die "client $c wrote nothing\n";
    while (<$fh>) {
        my ($k, $node, $status, $id, $good) = split;
        push @bad, "client $c chat $k via $node: $status" if $good ne 'ok';
        $answered{$id} = [$c, $k] if $good eq 'ok';
    }
}
is(scalar(@bad), 0, 'every chat answered, on either node')
    or diag(join "\n", @bad);
is(scalar(keys %answered), $CLIENTS * $CHATS, 'each with a chat id of its own');


# ------------------------------------------------- exactly once, in order

sub digest_of {
    my @m = @_;
    return ::digest(map { [$_->{role}, $_->{content}] } @m);
}

for my $s (0 .. $SESSIONS - 1) {
    my $sid = $SID[$s];
    # read through the node that did not create it, and through the other
    my %seen;
    for my $name (@NODES) {
        my $res = api($name, 'GET', "/session/$sid");
        is($res->{status}, 200, "session $s read through node $name");
        $seen{$name} = $res->{content};
    }
    my $a = $json->decode($seen{A});
    my $b = $json->decode($seen{B});
    is_deeply($b->{messages}, $a->{messages},
              "session $s: both nodes give the same history");

    my @m = @{ $a->{messages} };
    my @clients = grep { $_ % $SESSIONS == $s } 0 .. $CLIENTS - 1;
    is(scalar @m, 2 * $CHATS * @clients,
       "session $s: two messages for each of its " . $CHATS * @clients . ' chats');

    my (@order, %count, @wrong);
    for my $j (0 .. $#m) {
        my $want_role = $j % 2 ? 'assistant' : 'user';
        if ($m[$j]{role} ne $want_role) {
            push @wrong, "message $j is $m[$j]{role}, not $want_role";
            next;
        }
        if ($want_role eq 'user') {
            $count{ $m[$j]{content} }++;
            push @order, $m[$j]{content};
        } else {
            my $want = digest_of({ role => 'system', content => $SYS },
                                 @m[0 .. $j - 1]);
            push @wrong, "reply $j saw another history than the "
                         . "$j messages before it"
                if $m[$j]{content} ne $want;
        }
    }
    is(scalar(@wrong), 0, "session $s: every reply is of the whole history before it")
        or diag(join "\n", @wrong[0 .. ($#wrong > 4 ? 4 : $#wrong)]);

    my @dups = grep { $count{$_} != 1 } sort keys %count;
    my @inputs = map { my $c = $_; map { "c$c-$_" } 0 .. $CHATS - 1 } @clients;
    is(scalar(@dups) + scalar(grep { !$count{$_} } @inputs), 0,
       "session $s: every input once") or diag("twice: @dups");

    for my $c (@clients) {
        my @mine = map { /^c$c-(\d+)$/ ? $1 : () } @order;
        is("@mine", join(' ', 0 .. $CHATS - 1),
           "session $s: client $c\'s chats in the order it sent them");
    }
}

my $ids = join ',', map { "'$_'" } sort keys %answered;
is(psql(qq{select count(*) || ' ' || count(*) filter (where c.status = 'completed')
                   || ' ' || count(distinct c.session_id)
             from callhq.chats c
            where c.id in ($ids)
              and c.session_id in (@{[ join ',', map { "'$_'" } @SID ]})}),
   join(' ', $CLIENTS * $CHATS, $CLIENTS * $CHATS, $SESSIONS),
   'every chat answered is one completed row of its session');
is(psql(qq{select count(*) from callhq.chats c
            where c.session_id in (@{[ join ',', map { "'$_'" } @SID ]})}),
   $CLIENTS * $CHATS, 'and there are no others');
is(psql(qq{select count(*) from callhq.sessions
            where id in (@{[ join ',', map { "'$_'" } @SID ]})
              and (busy_chat is not null or turn_waiters)}),
   0, 'no turn left taken, nobody marked as waiting');


# ------------------------------------------------------- webhooks once

sub receiver {
    my ($path, %q) = @_;
    my $res = HTTP::Tiny->new(timeout => 90)->get("$R$path?" . ::query_string(%q));
    return $res->{content} // '';
}

my $events = $SESSIONS + $CLIENTS * $CHATS;
is(receiver('/_wait', path => '/t230/race', until => $events, settle => 1,
            summary => 1, timeout => 60),
   "requests=$events ids=$events duplicates=0 valid=$events\n",
   "webhooks: $events events, each delivered once, signed");

my %types;
$types{$_}++ for map { (split ' ')[0] }
                 split /\n/, receiver('/_wait', path => '/t230/race', until => 0);
is_deeply(\%types, { 'session.created' => $SESSIONS,
                     'chat.created' => $CLIENTS * $CHATS },
          'webhooks: one session.created per session, one chat.created per chat');
is(psql(q{select count(*) filter (where state = 'delivered') || ' ' || count(*)
            from callhq.webhook_outbox where url like '%/t230/race%'}),
   "$events $events", 'webhooks: every outbox row delivered');
for my $name (@NODES) {
    my $st = api($name, 'GET', '/_webhooks')->{content} // '';
    diag("node $name webhook status: $st");
}


# -------------------------------------------------------- expiry once

psql(qq{
    insert into callhq.sessions (org_id, assistant_id, name, expiration_seconds,
                                 expires_at)
    select k.org_id, '$EXPIRY_ASST', 't230-expiry-' || n, 60,
           now() + interval '1 second'
      from callhq.api_keys k, generate_series(1, $EXPIRING) n
     where k.key_hash = sha256('cq_test_a');
});
is(receiver('/_wait', path => '/t230/expiry', until => $EXPIRING, settle => 2.5,
            summary => 1, timeout => 30),
   "requests=$EXPIRING ids=$EXPIRING duplicates=0 valid=$EXPIRING\n",
   "expiry: $EXPIRING sessions expired under two nodes' sweepers, "
   . 'one session.updated each');
is(psql(qq{select count(*) from callhq.sessions
            where assistant_id = '$EXPIRY_ASST' and status = 'completed'}),
   $EXPIRING, 'expiry: each completed');


# ------------------------------------------------------------ the logs

my $woken = 0;
for my $name (@NODES) {
    open my $fh, '<', "$NODE{$name}{dir}/logs/error.log" or die "$!\n";
    my @log = <$fh>;
    my @lines = grep { /\[(?:error|crit|alert|emerg)\]/ } @log;
    is(scalar @lines, 0, "node $name logged no error") or diag(@lines[0 .. 4]);
    $woken += grep { /notified on callhq_turn/ } @log;
}
ok($woken > 0, 'the race was real: chats waited for turns the other node '
               . "gave back ($woken woken by NOTIFY)");

stop_nodes();
done_testing();
