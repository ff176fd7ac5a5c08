# The model location's upstream group sends a chat again to its next peer
# (proxy_next_upstream ... non_idempotent): the request body the module
# builds for the model subrequest must go out again whole, as it went the
# first time.
#
# The first peer, t/mock/failing_peer.py, reads each request whole and
# then fails it, closing the connection without a byte (/close/ paths) or
# answering 502 (/502/ paths); the mock model is the backup behind it.
# A refused connection would send nothing, and not exercise the resend.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

# the failing peer, for the whole suite
our ($PEER_PID, $PEER_PORT, $PEER_OUT);
{
    $PEER_PID = open my $peer, '-|', 'python3', 't/mock/failing_peer.py',
                                     '--port', '0'
        or die "failing_peer.py: $!\n";
    my $line = <$peer> // '';
    ($PEER_PORT) = $line =~ /listening on [\d.]+:(\d+)/
        or die "failing_peer.py did not start: $line\n";
    $main::PEER_OUT = $peer;
}

END { kill 'TERM', $PEER_PID if $PEER_PID }

# An upstream group: the failing peer first (never taken out of the
# group), the mock model behind it.  $how is "close" or "502".
sub model_group {
    return "$CallHQ::Test::POSTGRES\n"
         . "upstream callhq_model_group {\n"
         . "    server 127.0.0.1:$PEER_PORT max_fails=0;\n"
         . "    server 127.0.0.1:\$TEST_NGINX_MOCK_PORT backup;\n"
         . "}\n";
}

sub model_location {
    my ($how, $next) = @_;
    return api_location('/')
         . "location = /_model {\n    internal;\n"
         . "    proxy_pass http://callhq_model_group/$how/v1/chat/completions;\n"
         . "    proxy_http_version 1.1;\n"
         . "    proxy_set_header Connection \"\";\n"
         . "    proxy_buffering off;\n"
         . "    proxy_read_timeout 5s;\n"
         . "    proxy_next_upstream $next;\n"
         . "}\n"
         . "location /_mock/ {\n"
         . "    proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT;\n}\n"
         . "location /_peer/ {\n"
         . "    proxy_pass http://127.0.0.1:$PEER_PORT;\n}\n";
}

callhq_defaults(accum_error_log => 1, valgrind_timeout => 10);

# Ids 19000000-0000-4000-8000-0000000000NN; chats named "c190-...".
#   01  c190-echo (echo, SYS-190)
psql(q{
    delete from callhq.chats
     where name like 'c190-%' or assistant_id::text like '19000000-0000-4000-8000-%';
    delete from callhq.sessions
     where id::text like '19000000-0000-4000-8000-%'
        or assistant_id::text like '19000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '19000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select '19000000-0000-4000-8000-000000000001'::uuid, k.org_id, 'c190-echo',
           jsonb_build_object('provider', 'openai', 'model', 'echo',
               'messages', jsonb_build_array(jsonb_build_object(
                   'role', 'system', 'content', 'SYS-190'))),
           '2019-01-01T00:00:00Z', '2019-01-01T00:00:00Z'
      from callhq.api_keys k
     where k.key_hash = sha256('cq_test_a');
});

our $ECHO = '19000000-0000-4000-8000-000000000001';
our @SYS = ([system => 'SYS-190']);

# a body of some 2.5 kB, more than one write's worth of small buffers
our $WORDS = join ' ', map { sprintf 'r%03d', $_ } 1 .. 400;

sub post {
    my ($name, $input, $stream) = @_;
    return "POST /chat\n{\"assistantId\": \"$ECHO\", \"name\": \"$name\", "
           . "\"input\": " . ::cjson($input)
           . ($stream ? ', "stream": true' : '') . '}';
}

# what both peers read: the upstream body of the chat
sub sent {
    my ($input, $stream) = @_;
    return ::upstream(model => 'echo', messages => [@SYS, [user => $input]],
                      stream => $stream);
}

sub created {
    my ($name, $input) = @_;
    my @ctx = (@SYS, [user => $input]);
    my $e = ::echo(@ctx);
    return ::whole(::chat(input => $input, name => $name,
                          assistantId => $ECHO, messages => \@ctx,
                          output => [[assistant => $e]],
                          usage => ::usage(\@ctx, $e)));
}

# GET /_peer/requests: the bodies the failing peer read, as JSON strings
sub peer_read {
    return '[' . join(', ', map { ::cjson($_) } @_) . "]\n";
}

run_tests();

__DATA__

=== TEST 1: the first peer reads the chat and closes: the backup gets the same body, the chat is answered
--- http_config eval
main::model_group()
--- config eval
main::model_location('close', 'error timeout non_idempotent')
--- request eval
[ main::post('c190-close', 'first try fails'),
 "GET /_peer/requests?n=1",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200, 200]
--- response_body eval
[ main::created('c190-close', 'first try fails'),
 main::peer_read(main::sent('first try fails')),
 ::mock_requests(main::sent('first try fails'))]
--- error_log
upstream prematurely closed connection while reading response header from upstream
--- no_error_log
[crit]
[alert]
failed (14: Bad address)
chat could not be recorded



=== TEST 2: the same with a large body, streamed: the events of the whole reply
--- http_config eval
main::model_group()
--- config eval
main::model_location('close', 'error timeout non_idempotent')
--- request eval
[ main::post('c190-close-stream', $main::WORDS, 1),
 "GET /_peer/requests?n=1",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[ ::chat_events(undef, ::pieces(::echo(@main::SYS, [user => $main::WORDS]))),
 main::peer_read(main::sent($main::WORDS, 1)),
 ::mock_requests(main::sent($main::WORDS, 1))]
--- error_log
upstream prematurely closed connection while reading response header from upstream
--- no_error_log
[crit]
[alert]
failed (14: Bad address)
chat could not be recorded



=== TEST 3: the first peer reads the chat and answers 502 (proxy_next_upstream error http_502 non_idempotent)
--- http_config eval
main::model_group()
--- config eval
main::model_location('502', 'error http_502 non_idempotent')
--- request eval
[ main::post('c190-502', 'second peer answers'),
 "GET /_peer/requests?n=1",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200, 200]
--- response_body eval
[ main::created('c190-502', 'second peer answers'),
 main::peer_read(main::sent('second peer answers')),
 ::mock_requests(main::sent('second peer answers'))]



=== TEST 4: the same, streamed
--- http_config eval
main::model_group()
--- config eval
main::model_location('502', 'error http_502 non_idempotent')
--- request eval
[ main::post('c190-502-stream', 'streamed after a 502', 1),
 "GET /_peer/requests?n=1",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[ ::chat_events(undef, ::pieces(::echo(@main::SYS, [user => 'streamed after a 502']))),
 main::peer_read(main::sent('streamed after a 502', 1)),
 ::mock_requests(main::sent('streamed after a 502', 1))]



=== TEST 5: the chats went once each: recorded, completed
--- http_config eval
main::model_group()
--- config eval
main::model_location('close', 'error')
--- request
GET /chat?assistantId=19000000-0000-4000-8000-000000000001&sortOrder=ASC
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\{.*"name": "c190-close".*"name": "c190-close-stream".*"name": "c190-502".*"name": "c190-502-stream".*"totalItems": 4,/s
