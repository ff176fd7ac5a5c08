package CallHQ::Test;

# Helpers for the suites in t/: the set-up every suite shares, the nginx
# locations they serve the API and the mock model with, SQL on the test
# database, stopping and starting it.  Works under both our runner (t/lib)
# and OpenResty's Test::Nginx: the runner's functions are called by their
# full names, Test::Nginx::Socket::..., which both define.
#
# A suite is
#
#   use Test::Nginx::Socket 'no_plan';
#   use lib 't';
#   use CallHQ::Test qw(expect chat);    # and the fixtures it uses
#
#   callhq_defaults(config => api_location('/') . model_locations());
#   ... its fixtures ...
#   run_tests();

use strict;
use warnings;
use Exporter ();
use Time::HiRes ();

our @EXPORT = qw(psql pg_stop pg_start callhq_defaults api_location
                 model_locations);

# use CallHQ::Test qw(NAME ...): the functions above, and the fixtures
# t/fixtures/NAME.pl loaded in this order (expect before chat and webhook).
sub import {
    my ($class, @fixtures) = @_;
    local $Exporter::ExportLevel = 1;
    Exporter::import($class);
    require "./t/fixtures/$_.pl" for @fixtures;
}

# Org A's key and a JSON body: the request headers of a block that says
# nothing else (the same as $::AUTH_A of t/fixtures/expect.pl).
our $AUTH_A = "Authorization: Bearer cq_test_a\nContent-Type: application/json";

# Webhook receivers of the suites are on loopback: allowed.
our $POSTGRES = qq{callhq_postgres "\$TEST_NGINX_PG_CONNINFO";\n}
                . "callhq_webhook_allow 127.0.0.1;";

# Sets the runner up as every suite does (blocks in order, no default
# "location /", log level info) and adds a block preprocessor that gives
# each block without its own
#
#   http_config   callhq_postgres "$TEST_NGINX_PG_CONNINFO";
#                 callhq_webhook_allow 127.0.0.1;
#                 (http_config => '...' instead, undef for none), then
#                 "\n" and extra_http => '...' when given
#   config        location / { callhq_api; }
#                 (config => '...' instead, undef for none)
#   more_headers  Org A's key and a JSON body ($AUTH_A)
#   no_error_log  [error] [crit] [alert] (no_error_log => "..." instead)
#   timeout       timeout => N when given (else the runner's own)
#
# Further options:
#   skip_must_die => 1      blocks with --- must_die are left as they are
#   block => sub { ... }    called with each block first, for what a
#                           suite adds of its own
#   accum_error_log => 1    check_accum_error_log(): a block's log lines
#                           count for all its requests
#   valgrind_timeout => N   timeout(N) when nginx runs under valgrind
sub callhq_defaults {
    my %o = (http_config => $POSTGRES,
             config => 'location / { callhq_api; }',
             more_headers => $AUTH_A,
             no_error_log => "[error]\n[crit]\n[alert]",
             @_);

    Test::Nginx::Socket::no_shuffle();
    Test::Nginx::Socket::no_root_location();
    Test::Nginx::Socket::log_level('info');
    Test::Nginx::Socket::check_accum_error_log() if $o{accum_error_log};
    Test::Nginx::Socket::timeout($o{valgrind_timeout})
        if $o{valgrind_timeout} && $ENV{TEST_NGINX_USE_VALGRIND};

    my $http_config = $o{http_config};
    $http_config .= "\n$o{extra_http}"
        if defined $http_config && defined $o{extra_http};

    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        return if $o{skip_must_die} && defined $block->must_die;
        $o{block}->($block) if $o{block};
        for my $section (qw(http_config config more_headers no_error_log
                            timeout))
        {
            my $default = $section eq 'http_config' ? $http_config
                                                    : $o{$section};
            $block->set_value($section => $default)
                if defined $default && !defined $block->$section;
        }
        pgbouncer($block) if $ENV{CALLHQ_TEST_PGBOUNCER};
    });
}

# make test's second pass runs the chat and webhook suites through
# PgBouncer in transaction mode (scripts/test.sh): every block that
# connects gets unnamed statements and its LISTEN on a direct connection.
sub pgbouncer {
    my $block = shift;
    my $http = $block->http_config;
    return if !defined $http || $http !~ /\bcallhq_postgres\s/
              || $http =~ /\bcallhq_postgres_prepare\b/;
    $block->set_value(http_config => "$http\ncallhq_postgres_prepare off;\n"
        . qq{callhq_webhook_listen "\$TEST_NGINX_PG_DIRECT";\n});
}

# The API served at $path through the mock model (location /_model),
# with these directives besides:
#
#   location / {
#       callhq_api;
#       callhq_model_location /_model;
#   }
sub api_location {
    my ($path, @more) = @_;
    return "location $path {\n    callhq_api;\n"
           . "    callhq_model_location /_model;\n"
           . join('', map { "    $_\n" } @more) . "}\n";
}

# The model location the API's chats go to, on the mock
# (t/mock/mock_model.py), and /_mock/ for the mock's own requests:
#
#   read_timeout => '2s'   its proxy_read_timeout (undef: nginx's default)
#   buffering => 'off'     its proxy_buffering (undef: nginx's default)
#   mock => 1              with location /_mock/ (0: without)
sub model_locations {
    my %o = (read_timeout => '2s', buffering => 'off', mock => 1, @_);
    my $c = "location = /_model {\n    internal;\n"
            . "    proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT"
            . "/v1/chat/completions;\n"
            . "    proxy_http_version 1.1;\n"
            . "    proxy_set_header Connection \"\";\n";
    $c .= "    proxy_buffering $o{buffering};\n" if defined $o{buffering};
    $c .= "    proxy_read_timeout $o{read_timeout};\n"
        if defined $o{read_timeout};
    $c .= "}\n";
    $c .= "location /_mock/ {\n"
          . "    proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT;\n}\n"
        if $o{mock};
    return $c;
}

sub psql {
    my ($sql) = @_;
    my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO}
        or die "TEST_NGINX_PG_CONNINFO is not set: run the suite with make test\n";
    open my $fh, '-|', 'psql', '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1',
        $conninfo, '-c', $sql
        or die "psql: $!\n";
    my $out = do { local $/; <$fh> } // '';
    close $fh or die "psql failed on: $sql\n";
    $out =~ s/\n\z//;
    return $out;
}

sub pg_stop {
    system('scripts/pg.sh', 'stop', $ENV{CALLHQ_TEST_PGDIR}) == 0
        or die "could not stop PostgreSQL\n";
}

sub pg_start {
    system('scripts/pg.sh', 'start', $ENV{CALLHQ_TEST_PGDIR},
           $ENV{CALLHQ_TEST_PGPORT}) == 0
        or die "could not start PostgreSQL\n";
}

sub pg_running { -f "$ENV{CALLHQ_TEST_PGDIR}/data/postmaster.pid" }

# The nginx master's pid (0 before it wrote one): to signal it.
sub nginx_pid {
    open my $fh, '<', Test::Nginx::Socket::server_root() . '/logs/nginx.pid'
        or return 0;
    my $pid = <$fh> // 0;
    chomp $pid;
    return $pid;
}

# The size of nginx's error log now: where to start wait_for_log.
sub log_size {
    return -s (Test::Nginx::Socket::server_root() . '/logs/error.log') // 0;
}

# Poll nginx's error log (from byte $from on) for a line matching $re;
# false after $secs seconds.
sub wait_for_log {
    my ($re, $from, $secs) = @_;
    my $file = Test::Nginx::Socket::server_root() . '/logs/error.log';
    my $deadline = Time::HiRes::time() + ($secs // 60);
    while (Time::HiRes::time() < $deadline) {
        if (open my $fh, '<', $file) {
            seek $fh, $from // 0, 0;
            while (my $line = <$fh>) {
                return 1 if $line =~ $re;
            }
        }
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

1;
