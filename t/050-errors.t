# Errors of the REST layer: every error is a JSON body
# {"statusCode": N, "error": "<reason>", "message": "<names the fault>"};
# unknown paths (404), wrong methods (405 with Allow), bodies that are not
# JSON objects (400), not JSON at all (415), too large (413, with a
# Content-Length and chunked), query strings that are not UTF-8 and ids
# that are not UUIDs (400); large bodies are kept in memory, never spooled
# to a temporary file; a failed create leaves nothing behind.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults (t/CallHQ/Test.pm), with
# the webhook dispatcher off: deliveries other suites queued must not log
# into these blocks.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test;

callhq_defaults(extra_http => 'callhq_webhooks off;');

# The exact error body the module sends (jansson, compact).
sub err {
    my ($status, $message) = @_;
    my %reason = (400 => 'Bad Request', 404 => 'Not Found',
                  405 => 'Method Not Allowed', 413 => 'Payload Too Large',
                  415 => 'Unsupported Media Type',
                  500 => 'Internal Server Error');
    $message =~ s/(["\\])/\\$1/g;
    return qq[{"statusCode":$status,"error":"$reason{$status}",]
           . qq["message":"$message"}];
}

# A session list answer with exactly $n rows in total.
sub total_items {
    my $n = shift;
    return qr/\A\{"results": \[.*\], "metadata": \{.*"totalItems": $n[,}]/s;
}

# A chunked request body: $body cut into chunks of $size bytes.
sub chunked {
    my ($body, $size) = @_;
    my $out = '';
    for (my $i = 0; $i < length $body; $i += $size) {
        my $chunk = substr $body, $i, $size;
        $out .= sprintf("%x\r\n", length $chunk) . "$chunk\r\n";
    }
    return "${out}0\r\n\r\n";
}

sub chunked_request {
    my ($body, $size) = @_;
    return "POST /session HTTP/1.1\r\n"
           . "Host: localhost\r\n"
           . "Authorization: Bearer cq_test_a\r\n"
           . "Content-Type: application/json\r\n"
           . "Transfer-Encoding: chunked\r\n"
           . "Connection: close\r\n"
           . "\r\n" . chunked($body, $size);
}

# Over the 1k callhq_max_body_size of the 413 blocks.
our $TOO_LARGE = '{"name": "e050-too-large", "metadata": {"pad": "'
                 . ('p' x 2000) . '"}}';

# 40 seed messages of 1000 characters each: about 41 KB, more than
# client_body_buffer_size (16k), so nginx would spool the body to a file.
our $BIG_MESSAGES = join ', ', map {
    sprintf '{"role": "%s", "content": "m%03d-%s"}',
            $_ % 2 ? 'assistant' : 'user', $_, 'x' x 995
} 0 .. 39;
our $BIG_BODY = qq[{"name": "e050-big", "messages": [$BIG_MESSAGES]}];

# The raw history as the session body shows it, oldest first.
our $BIG_RAW = join ', ', map {
    sprintf '{"role":"%s","content":"m%03d-%s"}',
            $_ % 2 ? 'assistant' : 'user', $_, 'x' x 995
} 0 .. 39;

# Test-only trigger: refuses the message "e050-refuse" after the session
# row has been inserted, so that the statement fails half-way through.
# Sessions of this file are named e050-*; those created with an empty
# body are recognised by the expiration their block sets (5050 s).
psql(q{
    set client_min_messages = warning;

    create or replace function public.callhq_test_050_refuse()
    returns trigger language plpgsql as $$
    begin
        if NEW.content = '"e050-refuse"'::jsonb then
            raise exception 'e050 test trigger: message % refused', NEW.seq;
        end if;
        return NEW;
    end
    $$;

    drop trigger if exists callhq_test_050_refuse on callhq.messages;
    create trigger callhq_test_050_refuse before insert on callhq.messages
        for each row execute function public.callhq_test_050_refuse();

    delete from callhq.sessions
     where name like 'e050-%'
        or (name is null and expiration_seconds = 5050);
});

END {
    eval {
        psql(q{
            set client_min_messages = warning;
            drop trigger if exists callhq_test_050_refuse on callhq.messages;
            drop function if exists public.callhq_test_050_refuse();
            delete from callhq.sessions
             where name like 'e050-%'
                or (name is null and expiration_seconds = 5050);
        });
    };
}

run_tests();

__DATA__

=== TEST 1: unknown resource: 404 JSON naming the method and path
--- request
GET /nope
--- error_code: 404
--- response_headers
Content-Type: application/json
--- response_body eval
::err(404, 'Cannot GET /nope')



=== TEST 2: too many path segments: 404 JSON
--- request
GET /session/a/b
--- error_code: 404
--- response_headers
Content-Type: application/json
--- response_body eval
::err(404, 'Cannot GET /session/a/b')



=== TEST 3: no resource at all: 404 JSON
--- request
DELETE /
--- error_code: 404
--- response_body eval
::err(404, 'Cannot DELETE /')



=== TEST 4: PUT on a collection: 405 with Allow listing its methods
--- request
PUT /session
{}
--- error_code: 405
--- response_headers
Allow: GET, POST
Content-Type: application/json
--- response_body eval
::err(405, 'PUT is not allowed on /session (allowed: GET, POST)')



=== TEST 5: POST on an item: 405 with Allow listing the item's methods
--- request
POST /session/05000000-0000-4000-8000-000000000001
{}
--- error_code: 405
--- response_headers
Allow: GET, PATCH, DELETE
--- response_body eval
::err(405, 'POST is not allowed on /session/05000000-0000-4000-8000-000000000001'
           . ' (allowed: GET, PATCH, DELETE)')



=== TEST 6: a method nginx knows but the API does not: 405 with Allow
--- request
OPTIONS /assistant
--- error_code: 405
--- response_headers
Allow: GET, POST
--- response_body eval
::err(405, 'OPTIONS is not allowed on /assistant (allowed: GET, POST)')



=== TEST 7: a body that is not JSON: 400 "not valid JSON" with where
--- request
POST /session
{"name": "e050-bad-json",
--- error_code: 400
--- response_headers
Content-Type: application/json
--- response_body_like eval
qr/\A\{"statusCode":400,"error":"Bad Request","message":"body is not valid JSON: (?:[^"\\]|\\.)+ \(line 1, column \d+\)"\}\z/



=== TEST 8: a JSON array as the body: 400 "must be a JSON object"
--- request
POST /session
[{"name": "e050-array"}]
--- error_code: 400
--- response_body eval
::err(400, 'body must be a JSON object')



=== TEST 9: a JSON string as the body: 400 "not valid JSON"
--- request
POST /session
"e050-string"
--- error_code: 400
--- response_body_like eval
qr/\A\{"statusCode":400,"error":"Bad Request","message":"body is not valid JSON: (?:[^"\\]|\\.)+ \(line 1, column \d+\)"\}\z/



=== TEST 10: an empty POST body is an empty object: the session is created
--- config
location / {
    callhq_session_expiration 5050s;
    callhq_api;
}
--- more_headers
Authorization: Bearer cq_test_a
Content-Type: application/json
Content-Length: 0
--- request
POST /session
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"status": "active", .*"expirationSeconds": 5050, .*"messages": \[\]\}\z/



=== TEST 11: Content-Type text/plain: 415 naming the type
--- more_headers
Authorization: Bearer cq_test_a
Content-Type: text/plain
--- request
POST /session
{"name": "e050-text-plain"}
--- error_code: 415
--- response_headers
Content-Type: application/json
--- response_body eval
::err(415, 'Content-Type must be application/json, not "text/plain"')



=== TEST 12: Content-Type application/json with a charset is JSON
--- more_headers
Authorization: Bearer cq_test_a
Content-Type: application/json; charset=utf-8
--- request
POST /session
{"name": "e050-charset"}
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "e050-charset", /s



=== TEST 13: Content-Length over callhq_max_body_size: 413 JSON before the body is read
--- config
location / {
    callhq_max_body_size 1k;
    callhq_api;
}
--- request eval
"POST /session\n$::TOO_LARGE"
--- error_code: 413
--- response_headers
Content-Type: application/json
--- response_body eval
::err(413, 'request body is ' . length($::TOO_LARGE) . ' bytes, the limit is 1024')



=== TEST 14: a chunked body over callhq_max_body_size: 413 JSON
--- config
location / {
    callhq_max_body_size 1k;
    callhq_api;
}
--- raw_request eval
::chunked_request($::TOO_LARGE, 500)
--- error_code: 413
--- response_headers
Content-Type: application/json
--- response_body eval
::err(413, 'request body is ' . length($::TOO_LARGE) . ' bytes, the limit is 1024')



=== TEST 15: a chunked body under callhq_max_body_size is read whole
--- config
location / {
    callhq_max_body_size 1k;
    callhq_api;
}
--- raw_request eval
::chunked_request('{"name": "e050-chunked", "metadata": {"pad": "'
                  . ('p' x 600) . '"}}', 100)
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "e050-chunked", .*"metadata": \{"pad": "p{600}"\}/s



=== TEST 16: a body larger than client_body_buffer_size is kept in memory, never spooled
--- config
location / {
    client_body_buffer_size 16k;
    callhq_api;
}
--- request eval
"POST /session\n$::BIG_BODY"
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "e050-big", .*"messages": \[\Q$::BIG_RAW\E\]\}\z/s
--- no_error_log
a client request body is buffered to a temporary file
[error]
[crit]
[alert]



=== TEST 16a: a chunked body larger than client_body_buffer_size: in memory too
--- config
location / {
    client_body_buffer_size 1k;
    callhq_api;
}
--- raw_request eval
::chunked_request($::BIG_BODY, 700)
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "e050-big", .*"messages": \[\Q$::BIG_RAW\E\]\}\z/s
--- no_error_log
a client request body is buffered to a temporary file
[error]
[crit]
[alert]



=== TEST 17: invalid UTF-8 in a query value: 400
--- request
GET /session?name=%FF%FE
--- error_code: 400
--- response_body eval
::err(400, 'query string is not valid UTF-8')



=== TEST 18: invalid UTF-8 in a query key: 400
--- request
GET /session?%C3%28=x
--- error_code: 400
--- response_body eval
::err(400, 'query string is not valid UTF-8')



=== TEST 19: an id in the path that is not a UUID: 400 naming it
--- request
GET /session/not-a-uuid
--- error_code: 400
--- response_body eval
::err(400, 'Session id "not-a-uuid" must be a UUID')



=== TEST 20: a filter that is not a UUID: 400 naming the parameter
--- request
GET /session?id=42
--- error_code: 400
--- response_body eval
::err(400, 'id must be a UUID')



=== TEST 21: an invalid third seed message: 400 naming it
--- request
POST /session
{"name": "e050-atomic", "messages": [
  {"role": "user", "content": "one"},
  {"role": "assistant", "content": "two"},
  {"role": "robot", "content": "three"}]}
--- error_code: 400
--- response_body eval
::err(400, 'messages[2].role must be one of system, user, assistant, tool, developer')



=== TEST 22: a failure after the session row was written: 500, logged
--- request
POST /session
{"name": "e050-atomic", "messages": [
  {"role": "user", "content": "one"},
  {"role": "assistant", "content": "two"},
  {"role": "user", "content": "e050-refuse"}]}
--- error_code: 500
--- response_body eval
::err(500, 'internal error')
--- error_log
callhq: postgres error P0001: e050 test trigger: message 3 refused
--- no_error_log
[crit]
[alert]



=== TEST 23: neither failed create left a session behind
--- request
GET /session?name=e050-atomic
--- response_body_like eval
::total_items(0)



=== TEST 24: a chunked body far over callhq_max_body_size is refused without being stored
--- config
location / {
    client_body_buffer_size 16k;
    callhq_max_body_size 1k;
    callhq_api;
}
--- raw_request eval
::chunked_request($::BIG_BODY, 4096)
--- error_code: 413
--- response_body_like eval
qr/\A\{"statusCode":413,"error":"Payload Too Large","message":"[^"]*\b1024\b[^"]*"\}\z/
--- no_error_log
a client request body is buffered to a temporary file
[error]
[alert]
