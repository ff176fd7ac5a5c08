# The node's history cache (callhq_history_cache, ngx_http_callhq_history.c)
# when it is full: a small zone (64k) is filled by the histories of 150
# sessions, so that the least recently used are let go; then a session
# with a long history (40 messages, about 8 KB: pages of the zone) chats
# three times.  Its first chat reads the history from PostgreSQL, the two
# after find it in the cache, and each time the model is sent the whole
# context, byte for byte (the mock's "digest" model answers a digest of
# every message it was sent).  The metrics count the hits, the misses and
# the histories let go.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);
use JSON::PP ();

sub id { sprintf '17400000-0000-4000-8000-%012d', shift }

our $TINY = 150;        # sessions 1-150: a short history each
our $LONG = 1000;       # session 1000: 40 messages

sub seed_text { my $i = shift; return "seed $i " . ('x' x 150) }

our @SEED = map { [($_ % 2 ? 'user' : 'assistant'), seed_text($_)] } 1 .. 40;

psql(q{
    delete from callhq.chats where session_id::text like '17400000-0000-4000-8000-%';
    delete from callhq.sessions where id::text like '17400000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '17400000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select '} . id(1) . q{', k.org_id, 'c174-digest',
           '{"provider": "openai", "model": "digest"}',
           '2017-01-01T00:00:00Z', '2017-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name, status,
                                 expiration_seconds, expires_at, next_seq,
                                 created_at, updated_at)
    select ('17400000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
           k.org_id, '} . id(1) . qq{', 'c174-' || n, 'active', 86400,
           '2099-01-01T00:00:00Z', 1, '2017-02-01T00:00:00Z',
           '2017-02-01T00:00:00Z'
      from callhq.api_keys k, generate_series(1, $TINY) n
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name, status,
                                 expiration_seconds, expires_at, next_seq,
                                 created_at, updated_at)
    select '@{[ id($LONG) ]}', k.org_id, '@{[ id(1) ]}', 'c174-long', 'active',
           86400, '2099-01-01T00:00:00Z', 1, '2017-02-01T00:00:00Z',
           '2017-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');

    update callhq.sessions set next_seq = 3
     where id::text like '17400000-0000-4000-8000-%' and name <> 'c174-long';
    select callhq.messages_insert(s.id,
        '[{"role": "user", "content": "seed question"},
          {"role": "assistant", "content": "seed answer"}]', 1)
      from callhq.sessions s
     where s.id::text like '17400000-0000-4000-8000-%' and s.name <> 'c174-long';

    update callhq.sessions set next_seq = 41 where id = '@{[ id($LONG) ]}';
    select callhq.messages_insert('@{[ id($LONG) ]}', '@{[
        JSON::PP->new->canonical->encode(
            [map { { role => $_->[0], content => $_->[1] } } @SEED]) ]}', 1);
});

# the value of a counter of GET /metrics, 0 when it is not there
sub counter {
    my $re = shift;
    my ($head, $body) = split /\r\n\r\n/, ::api_request('GET', '/metrics', ''), 2;
    my ($v) = ($body // '') =~ /^\Q$re\E (\d+)$/m;
    return $v // 0;
}

# a chat of session $n: the status code and the reply's content
sub chat_reply {
    my ($n, $input) = @_;
    my $resp = ::post_chat('{"sessionId": "' . id($n) . '", "input": "'
                           . $input . '"}');
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($code) = ($head // '') =~ m{\AHTTP/1\.1 (\d{3}) };
    my $chat = eval { JSON::PP->new->decode($body // '') } // {};
    return ($code // 0, $chat->{output}[0]{content} // '');
}

# The long session's next chat: 201, sent the context (to which its
# input and the reply are added).
sub long_turn {
    my ($test, $context, $input) = @_;
    push @$context, [user => $input];
    my ($code, $reply) = chat_reply($LONG, $input);
    Test::More::is($code, 201, "$0 - $test: the chat '$input' answered 201");
    Test::More::is($reply, ::digest(@$context),
                   "$0 - $test: the chat '$input' was sent the whole context");
    push @$context, [assistant => $reply];
}

our $HTTP = qq{callhq_postgres "\$TEST_NGINX_PG_CONNINFO";
callhq_history_cache 64k;
callhq_webhooks off;};

our $CONFIG = api_location('/') . model_locations()
              . "location = /metrics {\n    callhq_metrics;\n"
              . "    callhq_metrics_db_interval 1h;\n}\n";

callhq_defaults(http_config => $HTTP, config => $CONFIG,
                valgrind_timeout => 30);

run_tests();

__DATA__

=== TEST 1: a full cache: 150 sessions' histories fill 64k, the least recently used are let go; a long history is then kept, and each chat of it sends the whole context
--- init
my $ok = 0;
for my $n (1 .. $main::TINY) {
    my ($code, $reply) = main::chat_reply($n, "tiny $n");
    $ok++ if $code == 201
             && $reply eq ::digest([user => 'seed question'],
                                   [assistant => 'seed answer'], [user => "tiny $n"]);
}
Test::More::is($ok, $main::TINY, "$0 - TEST 1: every short session's chat answered with its context");
Test::More::cmp_ok(main::counter('callhq_history_cache_evictions_total'), '>', 0,
                   "$0 - TEST 1: the full cache let histories go");

my @context = @main::SEED;
my $hits = main::counter('callhq_history_cache_total{result="hit"}');
for my $turn (1 .. 3) {
    main::long_turn('TEST 1', \@context, "long $turn");
    Test::More::is(main::counter('callhq_history_cache_total{result="hit"}') - $hits,
                   $turn == 1 ? 0 : $turn - 1,
                   "$0 - TEST 1: the long session's chat $turn "
                   . ($turn == 1 ? 'read its history' : 'found its history in the cache'));
}
--- request
GET /metrics
--- response_body_like
callhq_history_cache_total\{result="miss"\} (?:1[5-9]\d|[2-9]\d\d)



=== TEST 2: a history replaced (PATCH messages) is read again, whole, and the cache keeps the new one
--- init
my @context = ([user => 'new start'], [assistant => 'new answer']);
my ($head) = split /\r\n\r\n/, ::api_request('PATCH', '/session/' . main::id($main::LONG),
    '{"messages": [{"role": "user", "content": "new start"}, '
    . '{"role": "assistant", "content": "new answer"}]}'), 2;
Test::More::like($head // '', qr{\AHTTP/1\.1 200 }, "$0 - TEST 2: the messages replaced");
my $hits = main::counter('callhq_history_cache_total{result="hit"}');
main::long_turn('TEST 2', \@context, "after $_") for 1 .. 2;
Test::More::is(main::counter('callhq_history_cache_total{result="hit"}') - $hits, 1,
               "$0 - TEST 2: the first chat after the PATCH read, the second hit");
--- request
GET /metrics
--- response_body_like
callhq_history_cache_evictions_total \d+
