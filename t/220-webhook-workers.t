# Webhooks shared by several workers and several nginx instances on one
# database: no event is delivered twice, and both instances take part.
# Then a graceful shutdown with a delivery in flight: the worker exits at
# once, leaves no socket behind, and hands the event back (due at once,
# not when its lease ends): it comes again under the same webhook-id.
#
# Test::Nginx's nginx runs with a master and two workers; a second nginx
# (one worker, then two) is started here from Perl with its own
# configuration, on the same database and the same receiver.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect webhook);
use File::Temp ();
use HTTP::Tiny ();
use POSIX ();
use Time::HiRes qw(sleep time);

master_on();
workers(2);

$ENV{TEST_NGINX_WH_PORT} = ::start_receiver(
    '--secret', $::WH_SECRET, '--pg', $ENV{TEST_NGINX_PG_CONNINFO});
$ENV{TEST_NGINX_SECOND_PORT} = ::free_tcp_port();

our $R = "http://127.0.0.1:$ENV{TEST_NGINX_WH_PORT}";
our $MANY = 200;

::wh_defaults(config => <<'_EOC_');
location /_second/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_SECOND_PORT/;
}
_EOC_

add_test_cleanup_handler(sub { ::settle_outbox('%/t220/%') });

sub id { sprintf '22000000-0000-4000-8000-0000000000%02d', shift }

# 01 w220-many (answers after 200 ms: the second nginx, four at a time,
# cannot take all before this one is up, even under valgrind),
# 02 w220-inflight (silent once),
# 21 w220-inflight's session.
psql(qq{
    delete from callhq.webhook_outbox where url like '%/t220/%';
    delete from callhq.sessions
     where assistant_id::text like '22000000-0000-4000-8000-%'
        or id::text like '22000000-0000-4000-8000-%';
    delete from callhq.assistants
     where id::text like '22000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, server)
    select v.id::uuid, k.org_id, v.name, v.server::jsonb
      from callhq.api_keys k,
           (values ('@{[ id(1) ]}', 'w220-many',
                    '{"url": "$R/t220/many?delay=200", "secret": "$::WH_SECRET"}'),
                   ('@{[ id(2) ]}', 'w220-inflight',
                    '{"url": "$R/t220/inflight?hang=1", "secret": "$::WH_SECRET",
                      "timeoutSeconds": 60}'))
           v(id, name, server)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name,
                                 expiration_seconds, expires_at)
    select '@{[ id(21) ]}', k.org_id, '@{[ id(2) ]}', 'w220-inflight', 86400,
           '2099-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
});

psql(q{update callhq.webhook_outbox set state = 'delivered'
        where url like '%/t220/%' and state = 'pending'});


# ------------------------------------------------------ the second nginx

our $SECOND = File::Temp::tempdir('callhq-second-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
chmod 0755, $SECOND;
mkdir "$SECOND/$_" for qw(conf logs tmp);

sub second_pid {
    open my $fh, '<', "$SECOND/logs/nginx.pid" or return undef;
    my $pid = <$fh>;
    return $pid && $pid =~ /^(\d+)/ ? $1 : undef;
}

sub start_second {
    my ($workers, $http) = @_;
    my $user = $> == 0 ? 'user root;' : '';
    open my $fh, '>', "$SECOND/conf/nginx.conf" or die "$!\n";
    print $fh <<"_EOC_";
load_module $ENV{TEST_NGINX_LOAD_MODULES};
$user
daemon on;
master_process on;
worker_processes $workers;
pid $SECOND/logs/nginx.pid;
error_log $SECOND/logs/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $SECOND/tmp/body;
    proxy_temp_path $SECOND/tmp/proxy;
    callhq_postgres "$ENV{TEST_NGINX_PG_CONNINFO}";
    callhq_webhook_allow 127.0.0.1;
    $http
    server {
        listen 127.0.0.1:$ENV{TEST_NGINX_SECOND_PORT};
        location = /_webhooks { callhq_webhook_status; }
    }
}
_EOC_
    close $fh;
    unlink "$SECOND/logs/error.log";
    system('/usr/sbin/nginx', '-p', "$SECOND/", '-c', "$SECOND/conf/nginx.conf",
           '-e', "$SECOND/logs/error.log") == 0
        or die "the second nginx did not start\n";
}

# QUIT, and how long the master took to go (undef: still there after $max)
sub stop_second {
    my $max = shift // 30;
    my $pid = second_pid() // return 0;
    my $start = time;
    kill 'QUIT', $pid;
    while (time - $start < $max) {
        return time - $start if !kill(0, $pid) || zombie($pid);
        sleep 0.05;
    }
    return undef;
}

sub zombie {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    return <$fh> =~ /^\d+ \(.*\) Z/s;
}

END {
    local $?;
    stop_second() if defined second_pid();
}

start_second(1, "callhq_webhook_interval 50ms;\n    callhq_webhook_batch 4;");

run_tests();


# ------------------------------------ a graceful shutdown with one in flight
#
# The last block left Test::Nginx's nginx with delivery off: only the
# second nginx, now with two workers and a 6 s lease, delivers here.

sub receiver {
    my ($path, %q) = @_;
    my $res = HTTP::Tiny->new(timeout => 60)->get(
        "$R$path?" . ::query_string(%q));
    return $res->{content};
}

sub slurp_log {
    open my $fh, '<', "$SECOND/logs/error.log" or return '';
    local $/;
    return <$fh>;
}

stop_second();
start_second(2, "callhq_webhook_interval 50ms;\n    callhq_webhook_lease 6s;");

receiver('/_control', reset => 1);
psql(q{update callhq.sessions set name = 'w220-inflight-2'
        where id = '22000000-0000-4000-8000-000000000021'});

is(receiver('/_wait', path => '/t220/inflight', until => 1, count => 'any'),
   "session.updated hang A valid\n",
   "$0 - the delivery is in flight: the receiver holds it");

my $took = stop_second(10);
ok(defined $took, "$0 - the second nginx stops gracefully at once, "
                  . "the delivery in flight notwithstanding");

my $log = slurp_log();
like($log, qr/\[info\] .*callhq: 1 webhook deliveries in flight handed back/,
     "$0 - the worker says it hands one delivery back");
unlike($log, qr/\[(alert|crit|error)\]/,
       "$0 - no alert (no socket left open), no error");
is(psql(q{select next_attempt_at <= now() from callhq.webhook_outbox
           where session_id = '22000000-0000-4000-8000-000000000021'
             and type = 'session.updated'}),
   't', "$0 - handed back: due now, not when its 6 s lease ends");

start_second(2, "callhq_webhook_interval 50ms;\n    callhq_webhook_lease 6s;");

is(receiver('/_wait', path => '/t220/inflight', until => 1),
   "session.updated hang A valid\nsession.updated 200 A valid\n",
   "$0 - handed back, the same webhook-id is delivered");
is(psql(q{select attempts || ' ' || state from callhq.webhook_outbox
           where session_id = '22000000-0000-4000-8000-000000000021'
             and type = 'session.updated'}),
   '0 delivered', "$0 - the attempt handed back was not counted as a failure");

__DATA__

=== TEST 1: two nginx instances, three workers, one database: every event once, and both instances take part
--- http_config eval
::wh_http(batch => 16)
--- request eval
[::pgwait_req(q{with s as (
                    insert into callhq.sessions (org_id, assistant_id, name,
                                                 expiration_seconds, expires_at)
                    select k.org_id, '22000000-0000-4000-8000-000000000001',
                           'w220-many-' || n, 86400, '2099-01-01T00:00:00Z'
                      from callhq.api_keys k, generate_series(1, 200) n
                     where k.key_hash = sha256('cq_test_a')
                    returning 1)
                select count(*) from s}, '200', timeout => 0),
 ::wait_req(path => '/t220/many', until => $main::MANY, settle => 0.5,
            summary => 1, timeout => 60),
 ::pgwait_req(q{select count(*) filter (where state = 'delivered') || ' '
                       || count(*) from callhq.webhook_outbox
                 where url like '%/t220/many%'}, "$main::MANY $main::MANY"),
 "GET /_second/_webhooks"]
--- response_body eval
["200\n",
 "requests=$main::MANY ids=$main::MANY duplicates=0 valid=$main::MANY\n",
 "$main::MANY $main::MANY\n",
 qr/"worker":\{"inFlight":0,"attempts":(?:[1-9]|[1-9]\d|1\d\d),"failures":0\}\}\z/]



=== TEST 2: with callhq_webhooks off this nginx delivers nothing (the checks after the blocks rely on it)
--- http_config eval
::wh_http() . "callhq_webhooks off;\n"
--- request
GET /_webhooks
--- response_body eval
qr/"worker":\{"inFlight":0,"attempts":0,"failures":0\}\}\z/
