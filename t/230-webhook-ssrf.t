# Webhooks reach only the public internet unless the operator says
# otherwise: server.url is refused (400 naming it) when it points to
# loopback, private, link-local, CGNAT, unspecified, multicast or
# broadcast addresses, IPv4-mapped or -compatible IPv6, an IPv4 address
# spelled as one number, in octal or in hex, a unix socket, or carries
# user information; on POST and PATCH /assistant and in the inline
# assistants of POST /session and POST /chat.  callhq_webhook_allow
# opens ranges.  A delivery checks the address it is about to connect to
# again: a name that resolves to loopback (DNS rebinding) and a row
# written before the check are refused then, and nothing is sent.
#
# This suite's nginx allows nothing (no callhq_webhook_allow) unless a
# block says so.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect webhook);
use JSON::PP ();

our $DNS = ::free_udp_port();

$ENV{TEST_NGINX_WH_PORT} = ::start_receiver(
    '--secret', $::WH_SECRET, '--pg', $ENV{TEST_NGINX_PG_CONNINFO},
    '--dns-port', $DNS);

our $P = $ENV{TEST_NGINX_WH_PORT};

# wh_defaults' http_config allows 127.0.0.1: this suite's does not
::wh_defaults(skip_must_die => 1, http_config => ::wh_http(allow => undef));

add_test_cleanup_handler(sub { ::settle_outbox('%/t230/%') });

sub id { sprintf '23000000-0000-4000-8000-0000000000%02d', shift }

# Every refused form, with the reason the answer gives.
our @REFUSED = (
    ['http://169.254.169.254/latest/meta-data/',
     'must not point to a link-local address (169.254.169.254)'],
    ['http://10.0.0.1/', 'must not point to a private address (10.0.0.1)'],
    ['http://172.16.5.4:8080/x', 'must not point to a private address (172.16.5.4)'],
    ['https://192.168.1.1/', 'must not point to a private address (192.168.1.1)'],
    ['http://100.64.0.1/', 'must not point to a shared (CGNAT) address (100.64.0.1)'],
    ['http://127.0.0.1:8080/hook', 'must not point to a loopback address (127.0.0.1)'],
    ['HTTP://127.9.9.9/', 'must not point to a loopback address (127.9.9.9)'],
    ['http://127.0.0.1./', 'must not point to a loopback address (127.0.0.1)'],
    ['http://localhost:9/', 'must not point to a loopback address (localhost)'],
    ['http://api.LOCALHOST/', 'must not point to a loopback address (api.LOCALHOST)'],
    ['http://0.0.0.0:5432/', 'must not point to an unspecified address (0.0.0.0)'],
    ['http://[::]/', 'must not point to an unspecified address ([::])'],
    ['http://[::1]:80/', 'must not point to a loopback address ([::1])'],
    ['http://[fc00::1]/', 'must not point to a private address ([fc00::1])'],
    ['http://[fd12:3456::1]/', 'must not point to a private address ([fd12:3456::1])'],
    ['http://[fe80::1]/', 'must not point to a link-local address ([fe80::1])'],
    ['http://224.0.0.1/', 'must not point to a multicast address (224.0.0.1)'],
    ['http://[ff02::1]/', 'must not point to a multicast address ([ff02::1])'],
    ['http://255.255.255.255/', 'must not point to a broadcast address (255.255.255.255)'],
    ['http://[::ffff:127.0.0.1]/',
     'must not point to an IPv4-mapped IPv6 address ([::ffff:127.0.0.1])'],
    ['http://[::ffff:8.8.8.8]/',
     'must not point to an IPv4-mapped IPv6 address ([::ffff:8.8.8.8])'],
    ['http://[::127.0.0.1]/',
     'must not point to an IPv4-compatible IPv6 address ([::127.0.0.1])'],
    ['http://2130706433/',
     'must write an IPv4 address as four decimal numbers (a.b.c.d), not "2130706433"'],
    ['http://0x7f.1/',
     'must write an IPv4 address as four decimal numbers (a.b.c.d), not "0x7f.1"'],
    ['http://0x7f000001:80/',
     'must write an IPv4 address as four decimal numbers (a.b.c.d), not "0x7f000001"'],
    ['http://0177.0.0.1/',
     'must write an IPv4 address as four decimal numbers (a.b.c.d), not "0177.0.0.1"'],
    ['http://127.1/',
     'must write an IPv4 address as four decimal numbers (a.b.c.d), not "127.1"'],
    ['http://8.8.8.010/',
     'must write an IPv4 address as four decimal numbers (a.b.c.d), not "8.8.8.010"'],
    ['http://unix:/var/run/docker.sock:/containers', 'must not name a unix socket'],
    ['http://user:password@hooks.example.com/', 'must not contain user information'],
    ['http://hooks.example.com@127.0.0.1/', 'must not contain user information'],
    ['http://127.0.0.1%2e/', 'has an invalid host or port'],
    ['http://[::1%25lo]/', 'has an invalid host or port'],
    ['http://hooks.example.com:0/', 'has an invalid host or port'],
);

sub assistant_body { JSON::PP->new->canonical->encode({ server => { url => shift } }) }

our @PUBLIC = ('https://hooks.example.com/callhq?x=1', 'http://8.8.8.8:8080/',
               'https://[2606:4700:4700::1111]/hook', 'http://93.184.216.34',
               'https://xn--bcher-kva.example/');

psql(qq{
    delete from callhq.webhook_outbox where url like '%/t230/%';
    delete from callhq.sessions where id::text like '23000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '23000000-0000-4000-8000-%';

    -- rows the API would refuse now: written before the check, or by SQL
    insert into callhq.assistants (id, org_id, name, model, server)
    select v.id::uuid, k.org_id, v.name, '{"provider": "openai", "model": "echo"}',
           v.server::jsonb
      from callhq.api_keys k,
           (values ('@{[ id(1) ]}', 'w230-patch', null),
                   ('@{[ id(2) ]}', 'w230-rebind',
                    '{"url": "http://hooks.test:$P/t230/rebind"}'),
                   ('@{[ id(3) ]}', 'w230-old',
                    '{"url": "http://127.0.0.1:$P/t230/old"}'),
                   ('@{[ id(4) ]}', 'w230-allowed',
                    '{"url": "http://hooks.test:$P/t230/allowed"}'))
           v(id, name, server)
     where k.key_hash = sha256('cq_test_a');
});

run_tests();

__DATA__

=== TEST 1: POST /assistant refuses every form, naming server.url; nothing is stored
--- request eval
[map { "POST /assistant\n" . ::assistant_body($_->[0]) } @main::REFUSED]
--- error_code eval
[map { 400 } @main::REFUSED]
--- response_body eval
[map { ::err(400, "server.url $_->[1]") } @main::REFUSED]



=== TEST 2: ... nothing of TEST 1 was stored
--- request eval
::pgwait_req(q{select count(*) from callhq.assistants
                where server->>'url' like '%169.254%'
                   or server->>'url' like '%2130706433%'}, '0')
--- response_body
0



=== TEST 3: URLs written with JSON escapes and an escaped member name are read as jsonb reads them
--- request eval
["POST /assistant\n{\"server\": {\"url\": \"http:\\/\\/127.0.0.1\\/\"}}",
 "POST /assistant\n{\"server\": {\"url\": \"\\u0068ttp://10.0.0.\\u0031/\"}}",
 "POST /assistant\n{\"\\u0073erver\": {\"\\u0075rl\": \"http://[::1]/\"}}",
 "POST /assistant\n{\"server\": {\"url\": \"https://hooks.example.com/\"}, \"server\": {\"url\": \"http://10.0.0.2/\"}}"]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[::err(400, 'server.url must not point to a loopback address (127.0.0.1)'),
 ::err(400, 'server.url must not point to a private address (10.0.0.1)'),
 ::err(400, 'server.url must not point to a loopback address ([::1])'),
 ::err(400, 'server.url must not point to a private address (10.0.0.2)')]



=== TEST 4: public addresses and host names are accepted
--- request eval
[map { "POST /assistant\n" . ::assistant_body($_) } @main::PUBLIC]
--- error_code eval
[map { 201 } @main::PUBLIC]
--- response_body eval
[map { qr/"url": "\Q$_\E"/ } @main::PUBLIC]



=== TEST 5: SQL's own checks still speak for what is not an http(s) URL
--- request eval
["POST /assistant\n{\"server\": {\"url\": \"ftp://10.0.0.1/\"}}",
 "POST /assistant\n{\"server\": {\"url\": \"http://10.0.0.1/ x\"}}",
 "POST /assistant\n{\"server\": {\"url\": 42}}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'server.url must be an http:// or https:// URL'),
 ::err(400, 'server.url must be an http:// or https:// URL'),
 ::err(400, 'server.url must be a string')]



=== TEST 6: PATCH /assistant refuses it too, and the assistant keeps its server
--- request eval
["PATCH /assistant/23000000-0000-4000-8000-000000000001\n{\"server\": {\"url\": \"http://169.254.169.254/\"}}",
 "GET /assistant/23000000-0000-4000-8000-000000000001",
 "PATCH /assistant/23000000-0000-4000-8000-000000000001\n{\"server\": {\"url\": \"https://hooks.example.com/p\"}}"]
--- error_code eval
[400, 200, 200]
--- response_body eval
[::err(400, 'server.url must not point to a link-local address (169.254.169.254)'),
 qr/\A(?!.*"server").*"w230-patch"/s,
 qr/"server": \{"url": "https:\/\/hooks\.example\.com\/p"\}/]



=== TEST 7: an inline assistant of POST /session and of POST /chat: 400 naming assistant.server.url
--- request eval
["POST /session\n{\"assistant\": {\"model\": {\"provider\": \"openai\", \"model\": \"echo\"}, \"server\": {\"url\": \"http://10.1.2.3/\"}}}",
 "POST /chat\n{\"assistant\": {\"model\": {\"provider\": \"openai\", \"model\": \"echo\"}, \"server\": {\"url\": \"http://[fe80::1]/\"}}, \"input\": \"hi\"}"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'assistant.server.url must not point to a private address (10.1.2.3)'),
 ::err(400, 'assistant.server.url must not point to a link-local address ([fe80::1])')]



=== TEST 8: callhq_webhook_allow opens the ranges it names, and only those
--- http_config eval
::wh_http(allow => '127.0.0.1 10.0.0.0/8 fd00::/8')
--- request eval
["POST /assistant\n" . ::assistant_body('http://127.0.0.1:9/hook'),
 "POST /assistant\n" . ::assistant_body('http://localhost:9/hook'),
 "POST /assistant\n" . ::assistant_body('http://10.200.0.1/'),
 "POST /assistant\n" . ::assistant_body('http://[fd00::5]/'),
 "POST /assistant\n" . ::assistant_body('http://127.0.0.2/'),
 "POST /assistant\n" . ::assistant_body('http://[::1]/'),
 "POST /assistant\n" . ::assistant_body('http://[::ffff:127.0.0.1]/'),
 "POST /assistant\n" . ::assistant_body('http://2130706433/'),
 "POST /assistant\n" . ::assistant_body('http://user@127.0.0.1/')]
--- error_code eval
[201, 201, 201, 201, 400, 400, 400, 400, 400]
--- response_body eval
[qr/"url": "http:\/\/127\.0\.0\.1:9\/hook"/, qr/"url": "http:\/\/localhost:9\/hook"/,
 qr/"url": "http:\/\/10\.200\.0\.1\/"/, qr/"url": "http:\/\/\[fd00::5\]\/"/,
 ::err(400, 'server.url must not point to a loopback address (127.0.0.2)'),
 ::err(400, 'server.url must not point to a loopback address ([::1])'),
 ::err(400, 'server.url must not point to an IPv4-mapped IPv6 address ([::ffff:127.0.0.1])'),
 ::err(400, 'server.url must write an IPv4 address as four decimal numbers (a.b.c.d), not "2130706433"'),
 ::err(400, 'server.url must not contain user information')]



=== TEST 9: a name that resolves to loopback is refused just before connecting
--- http_config eval
::wh_http(allow => undef, resolver => "127.0.0.1:$main::DNS ipv6=off")
--- init
::insert_session('23000000-0000-4000-8000-000000000021',
                 '23000000-0000-4000-8000-000000000002', 'w230-rebind');
--- request eval
::pgwait_req(q{select last_error from callhq.webhook_outbox
                where url like '%/t230/rebind' and attempts > 0},
             'hooks.test is a loopback address (127.0.0.1), refused')
--- response_body
hooks.test is a loopback address (127.0.0.1), refused
--- error_log eval
qr/\[warn\] .*callhq: webhook attempt 1 failed: hooks\.test is a loopback address \(127\.0\.0\.1\), refused/



=== TEST 10: a row written before the check (an IP literal) is refused at delivery
--- init
::insert_session('23000000-0000-4000-8000-000000000022',
                 '23000000-0000-4000-8000-000000000003', 'w230-old');
--- request eval
::pgwait_req(q{select last_error from callhq.webhook_outbox
                where url like '%/t230/old' and attempts > 0},
             'the URL must not point to a loopback address (127.0.0.1)')
--- response_body
the URL must not point to a loopback address (127.0.0.1)
--- error_log
callhq: webhook attempt 1 failed: the URL must not point to a loopback address (127.0.0.1)



=== TEST 11: ... and neither reached the receiver
--- request eval
["GET /_receiver/_count?path=/t230/rebind", "GET /_receiver/_count?path=/t230/old"]
--- response_body eval
["0\n", "0\n"]



=== TEST 12: ... and with callhq_webhook_allow the same name is delivered
--- http_config eval
::wh_http(resolver => "127.0.0.1:$main::DNS ipv6=off")
--- init
::insert_session('23000000-0000-4000-8000-000000000023',
                 '23000000-0000-4000-8000-000000000004', 'w230-allowed');
--- request eval
::wait_req(path => '/t230/allowed', until => 1, fields => 'session.name')
--- response_body
session.created 200 A unsigned session.name="w230-allowed"



=== TEST 13: callhq_webhook_allow with something that is not an address: refused
--- http_config
callhq_webhook_allow 127.0.0.1 nowhere;
--- config
location / { return 204; }
--- must_die
--- error_log
[emerg]
invalid address or network "nowhere"
