# Webhooks: each event type reaches the assistant's server.url with its
# payload, signed the Standard Webhooks way; serverMessages filters them;
# a rolled-back change sends nothing; HTTPS with and without verification,
# hostnames through nginx's resolver (and without one); the expiry sweeper;
# the status location; the directives.
#
# Deliveries are checked through nginx on the receiver
# (t/mock/webhook_receiver.py), see t/fixtures/webhook.pl.  Each block
# starts by resetting the receiver it reads, and what a block leaves
# pending goes dead after it (add_test_cleanup_handler below).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect webhook);

our ($CERT, $KEY) = ::make_cert();
our $DNS = ::free_udp_port();

$ENV{TEST_NGINX_WH_PORT} = ::start_receiver(
    '--secret', $::WH_SECRET, '--pg', $ENV{TEST_NGINX_PG_CONNINFO});
$ENV{TEST_NGINX_WH_TLS_PORT} = ::start_receiver(
    '--secret', $::WH_SECRET, '--tls-cert', $CERT, '--tls-key', $KEY,
    '--dns-port', $DNS);
$ENV{TEST_NGINX_WH_DNS_PORT} = $DNS;
$ENV{TEST_NGINX_WH_CERT} = $CERT;

our $R = "http://127.0.0.1:$ENV{TEST_NGINX_WH_PORT}";
our $T = "https://127.0.0.1:$ENV{TEST_NGINX_WH_TLS_PORT}";
our $TN = "https://hooks.test:$ENV{TEST_NGINX_WH_TLS_PORT}";

::wh_defaults(skip_must_die => 1, config => <<'_EOC_');
location /_tls/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_WH_TLS_PORT/;
    proxy_read_timeout 60s;
    proxy_ssl_session_reuse off;    # nginx keeps it past exit (valgrind)
}
_EOC_

add_test_cleanup_handler(sub { ::settle_outbox('%/t200/%') });

sub id { sprintf '20000000-0000-4000-8000-0000000000%02d', shift }

# Ids 20000000-0000-4000-8000-0000000000NN, all of Org A.
#   01 w200-all (every event, X-Tenant header, Host and Content-Type
#      headers that must not win)      02 w200-filtered (two events)
#   03 w200-raw (a secret without whsec_)   04 w200-nosecret
#   05 w200-tls-ip   06 w200-tls-name   07 w200-noresolver
#   08 w200-sweep    09 w200-rollback   10 w200-nxdomain
#   11 w200-tls-refused
#   21 session to PATCH and DELETE     22 session to chat on
#   23 w200-filtered's session         24 session whose chat 31 is deleted
#   25 the expired session the sweeper completes (made by its block)
#   26-28 sessions made by the --- init of blocks that look at the log
sub server {
    my ($url, %more) = @_;
    my $s = { url => $url, secret => $::WH_SECRET, %more };
    delete $s->{secret} unless defined $s->{secret};
    return JSON::PP->new->canonical->encode($s);
}

use JSON::PP ();

my @assistants = (
    [1, 'w200-all', server("$R/t200/all", headers => {
        'X-Tenant' => 't200', Host => 'evil.example',
        'Content-Type' => 'text/plain' }), undef],
    [2, 'w200-filtered', server("$R/t200/filtered"),
     '["session.deleted", "chat.created"]'],
    [3, 'w200-raw', server("$R/t200/raw?secret=plain-secret-200",
                           secret => 'plain-secret-200'), undef],
    [4, 'w200-nosecret', server("$R/t200/nosecret", secret => undef), undef],
    [5, 'w200-tls-ip', server("$T/t200/tls-ip"), undef],
    [6, 'w200-tls-name', server("$TN/t200/tls-name"), undef],
    [7, 'w200-noresolver', server("http://hooks.test:$ENV{TEST_NGINX_WH_PORT}"
                                  . "/t200/noresolver"), undef],
    [8, 'w200-sweep', server("$R/t200/sweep"), undef],
    [9, 'w200-rollback', server("$R/t200/rollback"), undef],
    [10, 'w200-nxdomain', server("http://nope.invalid:"
                                 . "$ENV{TEST_NGINX_WH_PORT}/t200/nxdomain"),
     undef],
    [11, 'w200-tls-refused', server("$T/t200/tls-refused"), undef],
);

my $values = join ",\n", map {
    my ($n, $name, $server, $messages) = @$_;
    sprintf "('%s', '%s', '%s', %s)", id($n), $name, $server,
            defined $messages ? "'$messages'" : 'null'
} @assistants;

psql(qq{
    delete from callhq.webhook_outbox where url like '%/t200/%';
    delete from callhq.sessions
     where id::text like '20000000-0000-4000-8000-%'
        or assistant_id::text like '20000000-0000-4000-8000-%';
    delete from callhq.assistants
     where id::text like '20000000-0000-4000-8000-%';
});

# In a transaction of its own: the sessions of an earlier run (make test
# runs this suite twice on one database) go while their assistants are
# gone too, so that their session.deleted events are not written.
psql(qq{
    insert into callhq.assistants (id, org_id, name, model, server,
                                   server_messages, created_at, updated_at)
    select v.id::uuid, k.org_id, v.name,
           '{"provider": "openai", "model": "echo"}', v.server::jsonb,
           v.messages::jsonb, '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z'
      from callhq.api_keys k,
           (values $values) v(id, name, server, messages)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name,
                                 expiration_seconds, expires_at,
                                 created_at, updated_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.name, 86400,
           '2099-01-01T00:00:00Z', '2020-02-01T00:00:00Z',
           '2020-02-01T00:00:00Z'
      from callhq.api_keys k,
           (values ('@{[ id(21) ]}', '@{[ id(1) ]}', 'w200-patch'),
                   ('@{[ id(22) ]}', '@{[ id(1) ]}', 'w200-chat'),
                   ('@{[ id(23) ]}', '@{[ id(2) ]}', 'w200-filtered'),
                   ('@{[ id(24) ]}', '@{[ id(1) ]}', 'w200-chat-delete'))
           v(id, assistant_id, name)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.chats (id, org_id, assistant_id, session_id, input,
                              messages, output)
    select '@{[ id(31) ]}', k.org_id, '@{[ id(1) ]}', '@{[ id(24) ]}',
           '"to delete"', '[{"role": "user", "content": "to delete"}]',
           '[{"role": "assistant", "content": "gone"}]'
      from callhq.api_keys k
     where k.key_hash = sha256('cq_test_a');

});

# The fixtures' own events (written when the above commits) are not what
# the blocks look for.
psql(q{update callhq.webhook_outbox set state = 'delivered'
        where url like '%/t200/%' and state = 'pending'});

our $ASST = id(1);

END {
    eval { psql(q{delete from callhq.webhook_outbox where url like '%/t200/%'}) };
}

run_tests();

# The rejected POST of TEST 6 left nothing in the outbox.
is(psql(q{select count(*) from callhq.webhook_outbox
           where body like '%w200-rolled-back%'}) + 0, 0,
   "$0 - no event for the rolled-back session");

__DATA__

=== TEST 1: session.created: the session with its seed history and the assistant without its secret, signed, with server.headers but not those the module owns
--- request eval
["GET /_receiver/_control?reset=1",
 "POST /session\n{\"assistantId\": \"$main::ASST\", \"name\": \"w200-created\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"metadata\": {\"k\": 1}}",
 ::wait_req(path => '/t200/all', until => 1,
            fields => 'session.id,session.name,session.status,'
                      . 'session.assistantId,session.metadata,session.messages#,'
                      . 'session.messages.0.content,assistant.id,assistant.name,'
                      . 'assistant.server.url,assistant.server.secret,timestamp',
            headers => 'content-type,x-tenant,host,webhook-id,user-agent')]
--- error_code eval
[200, 201, 200]
--- response_body eval
["ok\n",
 qr/"name": "w200-created"/,
 qr/\Asession\.created 200 A valid session\.id="[0-9a-f-]{36}" session\.name="w200-created" session\.status="active" session\.assistantId="$main::ASST" session\.metadata=\{"k":1\} session\.messages#=1 session\.messages\.0\.content="hi" assistant\.id="$main::ASST" assistant\.name="w200-all" assistant\.server\.url="\Q$main::R\E\/t200\/all" assistant\.server\.secret=- timestamp=\d{13} content-type="application\/json" x-tenant="t200" host="127\.0\.0\.1:\d+" webhook-id="msg_[0-9a-f-]{36}" user-agent="callhq-webhook"\n\z/]
--- no_error_log
webhook attempt
[error]
[crit]
[alert]



=== TEST 2: PATCH sends session.updated (no messages, none new), DELETE session.deleted (without messages), in that order
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/20000000-0000-4000-8000-000000000021\n{\"name\": \"w200-renamed\"}",
 "DELETE /session/20000000-0000-4000-8000-000000000021",
 ::wait_req(path => '/t200/all', until => 2,
            fields => 'session.id,session.name,session.messages#,newMessages#')]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
["ok\n", qr/"w200-renamed"/, qr/"w200-renamed"/,
 "session.updated 200 A valid session.id=\"20000000-0000-4000-8000-000000000021\" session.name=\"w200-renamed\" session.messages#=- newMessages#=0\n"
 . "session.deleted 200 B valid session.id=\"20000000-0000-4000-8000-000000000021\" session.name=\"w200-renamed\" session.messages#=- newMessages#=-\n"]



=== TEST 3: POST /chat on a session: chat.created, and session.updated with the turn appended (newMessages), not the history
--- request eval
["GET /_receiver/_control?reset=1",
 "POST /chat\n{\"sessionId\": \"20000000-0000-4000-8000-000000000022\", \"input\": \"hello\"}",
 ::wait_req(path => '/t200/all', until => 2,
            fields => 'chat.sessionId,chat.assistantId,chat.output#,'
                      . 'session.id,session.messages#,newMessages#,'
                      . 'newMessages.0.content,assistant.id')]
--- error_code eval
[200, 201, 200]
--- response_body eval
["ok\n", qr/"sessionId": "20000000-0000-4000-8000-000000000022"/,
 "chat.created 200 A valid chat.sessionId=\"20000000-0000-4000-8000-000000000022\" chat.assistantId=\"20000000-0000-4000-8000-000000000001\" chat.output#=1 session.id=- session.messages#=- newMessages#=- newMessages.0.content=- assistant.id=\"20000000-0000-4000-8000-000000000001\"\n"
 . "session.updated 200 B valid chat.sessionId=- chat.assistantId=- chat.output#=- session.id=\"20000000-0000-4000-8000-000000000022\" session.messages#=- newMessages#=2 newMessages.0.content=\"hello\" assistant.id=\"20000000-0000-4000-8000-000000000001\"\n"]



=== TEST 4: DELETE /chat sends chat.deleted with the chat
--- request eval
["GET /_receiver/_control?reset=1",
 "DELETE /chat/20000000-0000-4000-8000-000000000031",
 ::wait_req(path => '/t200/all', until => 1,
            fields => 'chat.id,chat.sessionId,chat.output.0.content')]
--- error_code eval
[200, 200, 200]
--- response_body eval
["ok\n", qr/"id": "20000000-0000-4000-8000-000000000031"/,
 "chat.deleted 200 A valid chat.id=\"20000000-0000-4000-8000-000000000031\" chat.sessionId=\"20000000-0000-4000-8000-000000000024\" chat.output.0.content=\"gone\"\n"]



=== TEST 5: serverMessages: only the listed events are written and sent
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/20000000-0000-4000-8000-000000000023\n{\"name\": \"w200-filtered-2\"}",
 "POST /chat\n{\"sessionId\": \"20000000-0000-4000-8000-000000000023\", \"input\": \"hello\"}",
 "DELETE /session/20000000-0000-4000-8000-000000000023",
 ::wait_req(path => '/t200/filtered', until => 2),
 ::pgwait_req(q{select string_agg(type, ',' order by id) from callhq.webhook_outbox
                 where url like '%/t200/filtered'},
              'chat.created,session.deleted')]
--- error_code eval
[200, 200, 201, 200, 200, 200]
--- response_body eval
["ok\n", qr/"w200-filtered-2"/, qr/"output"/, qr/"w200-filtered-2"/,
 "chat.created 200 A valid\nsession.deleted 200 B valid\n",
 "chat.created,session.deleted\n"]



=== TEST 6: a POST /session that fails validation sends nothing; the next one is sent
--- request eval
["GET /_receiver/_control?reset=1",
 "POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000009\", \"name\": \"w200-rolled-back\", \"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"robot\", \"content\": \"b\"}]}",
 "POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000009\", \"name\": \"w200-after\"}",
 ::wait_req(path => '/t200/rollback', until => 1, fields => 'session.name'),
 ::pgwait_req(q{select count(*) from callhq.webhook_outbox
                 where url like '%/t200/rollback'}, '1')]
--- error_code eval
[200, 400, 201, 200, 200]
--- response_body eval
["ok\n",
 qr/\A\{"statusCode":400,"error":"Bad Request","message":"messages\[1\]\.role /,
 qr/"w200-after"/,
 "session.created 200 A valid session.name=\"w200-after\"\n",
 "1\n"]



=== TEST 7: a secret without "whsec_" keys the HMAC as raw bytes; no secret, no signature
--- request eval
["GET /_receiver/_control?reset=1",
 "POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000003\", \"name\": \"w200-raw\"}",
 "POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000004\", \"name\": \"w200-nosecret\"}",
 ::wait_req(path => '/t200/raw', until => 1, headers => 'webhook-signature'),
 ::wait_req(path => '/t200/nosecret', until => 1,
            headers => 'webhook-signature,webhook-id')]
--- error_code eval
[200, 201, 201, 200, 200]
--- response_body eval
["ok\n", qr/"w200-raw"/, qr/"w200-nosecret"/,
 qr/\Asession\.created 200 A valid webhook-signature="v1,[A-Za-z0-9+\/]{43}="\n\z/,
 qr/\Asession\.created 200 A unsigned webhook-signature=- webhook-id="msg_[0-9a-f-]{36}"\n\z/]



=== TEST 8: HTTPS with callhq_webhook_ssl_verify off: a self-signed receiver gets it (no SNI for an IP)
--- http_config eval
::wh_http(ssl_verify => 'off')
--- request eval
["GET /_tls/_control?reset=1",
 "POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000005\", \"name\": \"w200-tls-off\"}",
 ::wait_req(prefix => '/_tls', path => '/t200/tls-ip', until => 1,
            fields => 'session.name,@sni')]
--- error_code eval
[200, 201, 200]
--- response_body eval
["ok\n", qr/"w200-tls-off"/,
 "session.created 200 A valid session.name=\"w200-tls-off\" \@sni=null\n"]



=== TEST 9: HTTPS verified against the system's CAs: the self-signed certificate is refused, with a warning
--- init
::insert_session('20000000-0000-4000-8000-000000000026',
                 '20000000-0000-4000-8000-000000000011', 'w200-tls-refused');
--- request eval
::pgwait_req(q{select last_error from callhq.webhook_outbox
                where url like '%/t200/tls-refused' and attempts > 0},
             'SSL certificate verify error: (18:self-signed certificate)')
--- response_body
SSL certificate verify error: (18:self-signed certificate)
--- error_log eval
qr/\[warn\] .*callhq: webhook attempt 1 failed: SSL certificate verify error: \(18:self-signed certificate\), webhook: msg_[0-9a-f-]{36}, url: "https:\/\/127\.0\.0\.1:\d+\/t200\/tls-refused"/



=== TEST 10: ... and nothing was posted: the receiver saw a connection without a request
--- request eval
[::wait_req(prefix => '/_tls', path => '-', until => 1, count => 'any'),
 "GET /_tls/_count?path=/t200/tls-refused"]
--- response_body eval
[qr/\A(\? no-request [A-Z] unsigned\n)+\z/, "0\n"]



=== TEST 11: HTTPS verified with callhq_webhook_ssl_trusted_certificate: the IP is in the certificate
--- http_config eval
::wh_http(ssl_trusted_certificate => $main::CERT)
--- request eval
["GET /_tls/_control?reset=1",
 "POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000005\", \"name\": \"w200-tls-trusted\"}",
 ::wait_req(prefix => '/_tls', path => '/t200/tls-ip', until => 1,
            fields => 'session.name')]
--- error_code eval
[200, 201, 200]
--- response_body eval
["ok\n", qr/"w200-tls-trusted"/,
 "session.created 200 A valid session.name=\"w200-tls-trusted\"\n"]
--- no_error_log
webhook attempt
[error]



=== TEST 12: a hostname through nginx's resolver: SNI, and the certificate checked for that name
--- http_config eval
::wh_http(ssl_trusted_certificate => $main::CERT,
          resolver => "127.0.0.1:$main::DNS ipv6=off")
--- request eval
["GET /_tls/_control?reset=1",
 "POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000006\", \"name\": \"w200-tls-name\"}",
 ::wait_req(prefix => '/_tls', path => '/t200/tls-name', until => 1,
            fields => 'session.name,@sni', headers => 'host')]
--- error_code eval
[200, 201, 200]
--- response_body eval
["ok\n", qr/"w200-tls-name"/,
 qr/\Asession\.created 200 A valid session\.name="w200-tls-name" \@sni="hooks\.test" host="hooks\.test:\d+"\n\z/]



=== TEST 13: a hostname without a resolver fails the attempt, with a warning that says why
--- init
::insert_session('20000000-0000-4000-8000-000000000027',
                 '20000000-0000-4000-8000-000000000007', 'w200-noresolver');
--- request eval
::pgwait_req(q{select last_error from callhq.webhook_outbox
                where url like '%/t200/noresolver' and attempts > 0},
             'no resolver defined to resolve hooks.test (set "resolver" in the http block)')
--- response_body
no resolver defined to resolve hooks.test (set "resolver" in the http block)
--- error_log eval
qr/\[warn\] .*callhq: webhook attempt 1 failed: no resolver defined to resolve hooks\.test \(set "resolver" in the http block\), webhook: msg_[0-9a-f-]{36}, url: "http:\/\/hooks\.test:\d+\/t200\/noresolver"/



=== TEST 14: a name the resolver does not know fails the attempt
--- http_config eval
::wh_http(resolver => "127.0.0.1:$main::DNS ipv6=off")
--- init
::insert_session('20000000-0000-4000-8000-000000000028',
                 '20000000-0000-4000-8000-000000000010', 'w200-nxdomain');
--- request eval
::pgwait_req(q{select last_error from callhq.webhook_outbox
                where url like '%/t200/nxdomain' and attempts > 0},
             'nope.invalid could not be resolved (3: Host not found)')
--- response_body
nope.invalid could not be resolved (3: Host not found)
--- error_log
callhq: webhook attempt 1 failed: nope.invalid could not be resolved (3: Host not found)



=== TEST 15: the expiry sweeper completes an expired session once: exactly one session.updated
--- http_config eval
::wh_http(sweep_interval => '100ms')
--- init
CallHQ::Test::psql(q{
    delete from callhq.sessions where id = '20000000-0000-4000-8000-000000000025';
    insert into callhq.sessions (id, org_id, assistant_id, name, status,
                                 expiration_seconds, expires_at,
                                 created_at, updated_at)
    select '20000000-0000-4000-8000-000000000025', k.org_id,
           '20000000-0000-4000-8000-000000000008', 'w200-expired', 'active',
           86400, '2020-02-02T00:00:00Z', '2020-02-01T00:00:00Z',
           '2020-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
});
--- request eval
[::wait_req(path => '/t200/sweep', until => 2, settle => 0.5,
            fields => 'session.id,session.name,session.status'),
 ::pgwait_req(q{select status from callhq.sessions
                 where id = '20000000-0000-4000-8000-000000000025'}, 'completed')]
--- response_body eval
["session.created 200 A valid session.id=\"20000000-0000-4000-8000-000000000025\" session.name=\"w200-expired\" session.status=\"completed\"\n"
 . "session.updated 200 B valid session.id=\"20000000-0000-4000-8000-000000000025\" session.name=\"w200-expired\" session.status=\"completed\"\n",
 "completed\n"]



=== TEST 16: callhq_webhook_status: the outbox counts and this worker's
--- request eval
["GET /_webhooks", "POST /_webhooks\n{}"]
--- error_code eval
[200, 405]
--- response_headers eval
["Content-Type: application/json", ""]
--- response_body eval
[qr/\A\{"pending":\d+,"delivered":[1-9]\d*,"dead":\d+,"worker":\{"inFlight":\d+,"attempts":\d+,"failures":\d+\}\}\z/,
 qr/405 Not Allowed/]



=== TEST 17: with callhq_webhooks off nothing is delivered here; the status still answers
--- http_config eval
::wh_http() . "callhq_webhooks off;\n"
--- request eval
["POST /session\n{\"assistantId\": \"20000000-0000-4000-8000-000000000009\", \"name\": \"w200-off\"}",
 "GET /_webhooks",
 ::pgwait_req(q{select state || ' ' || attempts from callhq.webhook_outbox
                 where body like '%w200-off%'}, 'pending 0')]
--- error_code eval
[201, 200, 200]
--- response_body eval
[qr/"w200-off"/,
 qr/\A\{"pending":[1-9]\d*,"delivered":\d+,"dead":\d+,"worker":\{"inFlight":0,"attempts":0,"failures":0\}\}\z/,
 "pending 0\n"]
--- no_error_log
webhook listener



=== TEST 18: every directive with a valid value
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_webhooks on;
callhq_webhook_interval 2s;
callhq_webhook_batch 1000;
callhq_webhook_backoff 5s 2h;
callhq_webhook_max_age 3d;
callhq_webhook_lease 10m;
callhq_webhook_sweep_interval 0;
callhq_webhook_ssl_verify on;
callhq_webhook_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
--- request
GET /_webhooks
--- response_body eval
qr/\A\{"pending":\d+,/



=== TEST 19: callhq_webhooks on without callhq_postgres: refused
--- http_config
callhq_webhooks on;
--- config
location / { return 204; }
--- must_die
--- error_log
[emerg]
"callhq_webhooks on" needs "callhq_postgres"



=== TEST 20: callhq_webhook_status without callhq_postgres: refused
--- config
location = /_webhooks { callhq_webhook_status; }
--- must_die
--- error_log
[emerg]
"callhq_webhook_status" needs "callhq_postgres" in the http block



=== TEST 21: callhq_webhook_backoff with max below base: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_webhook_backoff 2s 1s;
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_webhook_backoff" directive must be "base max" with 0 < base <= max



=== TEST 22: callhq_webhook_batch 0: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_webhook_batch 0;
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
value must be between 1 and 1000



=== TEST 23: callhq_webhook_lease below 2s: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_webhook_lease 1s;
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_webhook_lease" must be between 2s and 24h
