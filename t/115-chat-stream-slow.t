# A streamed chat to a client that reads slowly: the worker frames the
# model's stream no faster than the client takes it.  It keeps the reply
# for the recording and a fixed number of buffers, not framed copies of
# the whole reply, and stops reading the model while the client lags.
#
# The mock's "long-<n>" model streams a reply of n characters, here in
# pieces of 4 kB ("pieces-4096"): 4 MB at once.  The client has a small
# receive buffer and talks to a server whose socket has a small send
# buffer (listen ... sndbuf=16k), so the kernel does not take the reply
# off nginx's hands either.  It reads a hundred bytes at a time at first,
# measuring the worker's resident memory (VmRSS; nginx runs as one
# process), then the rest, which must be the whole reply, recorded.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);
use IO::Socket::INET ();
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes ();

our $SIZE = 4 * 1024 * 1024;

# Resident memory the worker may gain while the client reads slowly:
# before the reply is framed as fast as the model sends it, 2 x $SIZE.
our $BOUND_KB = 1024;

our $SLOW_PORT = `scripts/freeport.pl 1`;
chomp $SLOW_PORT;

our $LOCATIONS = api_location('/', 'callhq_max_reply_size 16m;')
                 . model_locations(read_timeout => '10s');

# the server the slow client reads from
sub slow_server {
    my ($model_location) = @_;
    return "$CallHQ::Test::POSTGRES\n"
         . "server {\n"
         . "    listen 127.0.0.1:$SLOW_PORT sndbuf=16k;\n"
         . "    $model_location\n"
         . "}\n";
}

callhq_defaults(config => $LOCATIONS, accum_error_log => 1,
                valgrind_timeout => 60, timeout => 60);

# Ids 11500000-0000-4000-8000-0000000000NN; chats named "c115-...".
#   01  c115-long (long-4194304+pieces-4096)
#   02  c115-echo (echo): a small chat first, for what a worker sets up once
psql(qq{
    delete from callhq.chats
     where name like 'c115-%' or assistant_id::text like '11500000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '11500000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select '11500000-0000-4000-8000-000000000001'::uuid, k.org_id, 'c115-long',
           jsonb_build_object('provider', 'openai',
               'model', 'long-$SIZE+pieces-4096',
               'messages', jsonb_build_array(jsonb_build_object(
                   'role', 'system', 'content', 'SYS-115'))),
           '2015-01-01T00:00:00Z', '2015-01-01T00:00:00Z'
      from callhq.api_keys k
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select '11500000-0000-4000-8000-000000000002'::uuid, k.org_id, 'c115-echo',
           jsonb_build_object('provider', 'openai', 'model', 'echo',
               'messages', jsonb_build_array(jsonb_build_object(
                   'role', 'system', 'content', 'SYS-115'))),
           '2015-01-01T00:00:00Z', '2015-01-01T00:00:00Z'
      from callhq.api_keys k
     where k.key_hash = sha256('cq_test_a');
});

our $LONG = '11500000-0000-4000-8000-000000000001';
our $ECHO = '11500000-0000-4000-8000-000000000002';

# the mock's long-<n> text
sub long_text {
    my $n = shift;
    return substr(join('', map { sprintf '%07d ', $_ } 1 .. int($n / 8) + 1),
                  0, $n);
}

sub rss_kb {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+)/;
    }
    return 0;
}

*nginx_pid = \&CallHQ::Test::nginx_pid;

# POST $path on the slow server with a 4 kB receive buffer: reads 100
# bytes at a time, $slow times, noting the worker's largest VmRSS, then the
# rest.  Returns (raw response, VmRSS before, largest VmRSS while slow).
sub slow_chat {
    my ($path, $body, $slow) = @_;
    my $pid = nginx_pid();

    my $sock = IO::Socket::INET->new(Proto => 'tcp')
        or die "socket: $!\n";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!\n";
    my $addr = Socket::pack_sockaddr_in($SLOW_PORT,
                                        Socket::inet_aton('127.0.0.1'));
    for (1 .. 200) {    # nginx may still be starting (valgrind)
        last if connect($sock, $addr);
        Time::HiRes::sleep(0.1);
    }

    my $rss0 = rss_kb($pid);
    my $max = $rss0;

    print $sock "POST $path HTTP/1.0\r\nHost: localhost\r\n"
        . "Authorization: Bearer cq_test_a\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";

    my $resp = '';
    for (1 .. $slow) {
        my $n = sysread($sock, my $buf, 100);
        last unless $n;
        $resp .= $buf;
        Time::HiRes::sleep(0.05);
        my $rss = rss_kb($pid);
        $max = $rss if $rss > $max;
    }

    while (my $n = sysread($sock, my $buf, 65536)) {
        $resp .= $buf;
    }

    close $sock;
    return ($resp, $rss0, $max);
}

# the text of a stream's deltas, in order
sub deltas {
    my ($resp, $responses) = @_;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my $text = '';
    my $events = 0;
    my $type = $responses ? qr/^event: response\.output_text\.delta\n/m
                          : qr//;
    for my $ev (split /\n\n/, $body // '') {
        next if $responses && $ev !~ $type;
        next unless $ev =~ /^data: .*"delta":"([^"]*)"\}$/m;
        $text .= $1;
        $events++;
    }
    return ($head // '', $text, $events);
}

# Checks one slow chat: the answer, the whole reply, the memory, the
# recording.  $name names the chat.
sub check_slow {
    my ($path, $name, $responses) = @_;

    # a small chat first: the connections and caches a worker sets up once
    my $hi = '{"assistantId": "' . $ECHO . '", "input": "hi", '
             . '"name": "c115-warm", "stream": true}';
    my ($small) = slow_chat($path, $hi, 0);
    Test::More::like($small, qr{\AHTTP/1\.1 200 .*"delta":}s,
                     "$name: a small chat first");

    my ($resp, $rss0, $max) = slow_chat($path,
        qq{{"assistantId": "$LONG", "input": "go", "name": "$name", "stream": true}},
        40);
    my ($head, $text, $events) = deltas($resp, $responses);
    my $want = long_text($SIZE);

    Test::More::like($head, qr{\AHTTP/1\.1 200 }, "$name: 200");
    Test::More::ok($text eq $want, "$name: the whole reply, in order"
                   . " ($events events, " . length($text) . " of $SIZE bytes)");

    if ($ENV{TEST_NGINX_USE_VALGRIND}) {
        Test::More::pass("$name: memory (not measured under valgrind)");
    } else {
        Test::More::cmp_ok($max - $rss0, '<', $BOUND_KB,
                           "$name: the worker's VmRSS grew by less than"
                           . " $BOUND_KB kB while the client read slowly"
                           . " (before $rss0 kB, at most $max kB)");
    }

    my $rec;
    for (1 .. 100) {    # recorded once the stream ended
        $rec = CallHQ::Test::psql("select status || ' ' ||"
            . " length(output->0->>'content') from callhq.chats"
            . " where name = '$name'");
        last if $rec;
        Time::HiRes::sleep(0.1);
    }
    Test::More::is($rec, "completed $SIZE", "$name: recorded whole");
}

run_tests();

__DATA__

=== TEST 1: POST /chat, streamed to a slow client (model location unbuffered)
--- http_config eval
main::slow_server($main::LOCATIONS)
--- init
main::check_slow('/chat', 'c115-chat');
--- request
GET /assistant/11500000-0000-4000-8000-000000000001
--- error_code: 200



=== TEST 2: the same with proxy_buffering on, small buffers and temp files
--- http_config eval
(my $l = $main::LOCATIONS) =~ s/proxy_buffering off;/proxy_buffering on; proxy_buffers 4 4k; proxy_buffer_size 4k; proxy_busy_buffers_size 4k; proxy_temp_file_write_size 4k;/;
main::slow_server($l)
--- config eval
$main::LOCATIONS =~ s/proxy_buffering off;/proxy_buffering on; proxy_buffers 4 4k; proxy_buffer_size 4k; proxy_busy_buffers_size 4k; proxy_temp_file_write_size 4k;/r
--- init
main::check_slow('/chat', 'c115-buffered');
--- request
GET /assistant/11500000-0000-4000-8000-000000000001
--- error_code: 200



=== TEST 3: POST /chat/responses, streamed to a slow client
--- http_config eval
main::slow_server($main::LOCATIONS)
--- init
main::check_slow('/chat/responses', 'c115-responses', 1);
--- request
GET /assistant/11500000-0000-4000-8000-000000000001
--- error_code: 200
