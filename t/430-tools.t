# Tool calling through sessions, on both surfaces: an assistant's
# model.tools (and a Responses request's tools, tool_choice,
# parallel_tool_calls) go upstream; a reply with tool_calls is recorded as
# the assistant's message with its calls and returned (/chat: in output,
# an assistant message with tool_calls; Responses: function_call items);
# the next turn's results (/chat: role tool with tool_call_id; Responses:
# function_call_output items) are recorded and sent upstream after the
# calls.  Streams carry the calls too, and a stream cut mid-arguments is
# recorded as incomplete.
#
# The mock's "tool" modifier calls the request's tools (call_<turn>_<i>,
# arguments {"q": <last user message>, "i": i}) unless the last message is
# a tool result; then its "echo" answers the messages it got, so that the
# second turn shows what went upstream, in order.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect);
use JSON::PP ();

our $CONFIG = api_location('/') . <<'_EOC_' . model_locations();
location /v1/ {
    callhq_openai;
    callhq_model_location /_model;
}
_EOC_

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

# 43000000-0000-4000-8000-0000000000NN:
#   01 t430-tool  (echo+tool, get_weather)    02 t430-par (echo+tool-2,
#   get_weather and get_time)    03 t430-cut (echo+tool+cut-after-2,
#   get_weather: two pieces of the arguments, then the model's connection
#   closes)    04 t430-plain (echo+tool, no tools of its own)
#   11, 12, 13 sessions of 01, 01, 03     14 a session of 04 (a conversation)
#   15 a session of 01, chatted with the general way
#   c1 a chat that called two tools, for GET /responses/{id}
psql(q{
    delete from callhq.chats
     where id::text like '43000000-0000-4000-8000-%'
        or assistant_id::text like '43000000-0000-4000-8000-%'
        or metadata->>'t' like 't430%';
    delete from callhq.sessions where id::text like '43000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '43000000-0000-4000-8000-%'
        or name like 't430-%';

    insert into callhq.assistants (id, org_id, name, model)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb
      from callhq.api_keys k,
           (values
            ('43000000-0000-4000-8000-000000000001', 't430-tool',
             '{"provider": "openai", "model": "echo+tool", "tools": [{"type": "function",
               "function": {"name": "get_weather", "description": "The weather",
                            "parameters": {"type": "object"}}}]}'),
            ('43000000-0000-4000-8000-000000000002', 't430-par',
             '{"provider": "openai", "model": "echo+tool-2", "tools": [
               {"type": "function", "function": {"name": "get_weather"}},
               {"type": "function", "function": {"name": "get_time"}}]}'),
            ('43000000-0000-4000-8000-000000000003', 't430-cut',
             '{"provider": "openai", "model": "echo+tool+cut-after-2", "tools": [
               {"type": "function", "function": {"name": "get_weather"}}]}'),
            ('43000000-0000-4000-8000-000000000004', 't430-plain',
             '{"provider": "openai", "model": "echo+tool"}'))
           v(id, name, model)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name, status,
                                 expiration_seconds, expires_at, next_seq)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, 't430', 'active', 86400,
           '2099-01-01T00:00:00Z', 1
      from callhq.api_keys k,
           (values ('43000000-0000-4000-8000-000000000011',
                    '43000000-0000-4000-8000-000000000001'),
                   ('43000000-0000-4000-8000-000000000012',
                    '43000000-0000-4000-8000-000000000001'),
                   ('43000000-0000-4000-8000-000000000013',
                    '43000000-0000-4000-8000-000000000003'),
                   ('43000000-0000-4000-8000-000000000014',
                    '43000000-0000-4000-8000-000000000004'),
                   ('43000000-0000-4000-8000-000000000015',
                    '43000000-0000-4000-8000-000000000001'))
           v(id, assistant_id)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.chats (id, org_id, assistant_id, messages, output, status,
                              prompt_count)
    select '43000000-0000-4000-8000-0000000000c1', k.org_id,
           '43000000-0000-4000-8000-000000000002',
           '[{"role": "user", "content": "w"}]',
           '[{"role": "assistant", "content": null, "tool_calls": [
              {"id": "call_a", "type": "function",
               "function": {"name": "get_weather", "arguments": "{}"}},
              {"id": "call_b", "type": "function",
               "function": {"name": "get_time", "arguments": "{\"tz\":1}"}}]}]',
           'completed', 0
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
});

sub id { sprintf '43000000-0000-4000-8000-0000000000%s', shift }

our ($TOOL, $PAR, $CUT, $PLAIN) = (id('01'), id('02'), id('03'), id('04'));
our ($S1, $S2, $S3, $CONV, $S5) = (id('11'), id('12'), id('13'), id('14'), id('15'));
our $C1 = id('c1');

our $J = JSON::PP->new->canonical;

# the mock's arguments of call i for the last user message $q
sub args {
    my ($q, $i) = @_;
    return '{"q":' . JSON::PP->new->allow_nonref->encode($q) . ',"i":' . $i . '}';
}

# A check of the body: $f sums it up (decoded JSON, or the text of a
# stream), and that must be $want exactly (else the difference is shown).
sub shape {
    my ($f, $want) = @_;
    return qr/\A(?(?{ main::same(main::sum_up($f, $_), $want) })|(*FAIL))/s;
}

sub sum_up {
    my ($f, $body) = @_;
    my $got = eval { $f->($body) };
    return defined $got ? $got : "not what was expected: $@ $body";
}

sub same {
    my ($got, $want) = @_;
    Test::More::diag("got:\n$got\nwant:\n$want") if $got ne $want;
    return $got eq $want;
}

# a JSON body's member, as canonical JSON
sub member {
    my $name = shift;
    return sub { $J->encode($J->decode(shift)->{$name}) };
}

# a chat's output and status, canonical
sub chat_out {
    my $b = $J->decode(shift);
    return "$b->{status} " . $J->encode($b->{output});
}

# /chat's stream: one line per path, its deltas joined, in order
sub chat_events {
    my $body = shift;
    my (@out, %seen);
    for my $block (split /\n\n/, $body) {
        my ($data) = $block =~ /^data: (.*)$/m or next;
        my $e = $J->decode($data);
        if (!exists $seen{ $e->{path} }) {
            push @out, $e->{path};
            $seen{ $e->{path} } = '';
        }
        $seen{ $e->{path} } .= $e->{delta};
    }
    return join('', map { "$_ $seen{$_}\n" } @out);
}

# a Responses stream, one line per event: its number and type, and what
# it carries of the items; the argument deltas of a call on one line
sub response_events {
    my $body = shift;
    my ($seq, @out, $resp) = (0);
    for my $block (split /\n\n/, $body) {
        my ($name) = $block =~ /^event: (.*)$/m;
        my ($data) = $block =~ /^data: (.*)$/m;
        my $e = $J->decode($data);
        my $t = $e->{type};
        die "event: $name for $t\n" if $name ne $t;
        die "sequence_number $e->{sequence_number}, $seq expected\n"
            if $e->{sequence_number} != $seq++;
        if ($t eq 'response.function_call_arguments.delta') {
            if ($out[-1] =~ /^deltas $e->{output_index} /) {
                $out[-1] .= $e->{delta};
            } else {
                push @out, "deltas $e->{output_index} $e->{delta}";
            }
            next;
        }
        next if $t eq 'response.output_text.delta';
        my $line = $t;
        if (my $r = $e->{response}) {
            $resp //= substr $r->{id}, 5;
            $line .= " $r->{status} " . items($resp, $r->{output});
        }
        $line .= " $e->{output_index} " . items($resp, [$e->{item}]) if $e->{item};
        $line .= " $e->{output_index} $e->{item_id} $e->{name} $e->{arguments}"
            if $t eq 'response.function_call_arguments.done';
        push @out, $line;
    }
    my $s = join("\n", @out) . "\n";
    $s =~ s/\Q$resp\E/<r>/g if $resp;
    return $s;
}

# output items in short: "message <status> <text>" or "fc <id> <status>
# <call_id> <name> <arguments>", the response's id as <r>
sub items {
    my ($resp, $items) = @_;
    return '[' . join(', ', map {
        $_->{type} eq 'message'
            ? "message $_->{status} " . join('', map { $_->{text} } @{ $_->{content} })
            : "$_->{type} $_->{id} $_->{status} $_->{call_id} $_->{name} $_->{arguments}"
    } @$items) . ']';
}

sub response_out {
    my $b = $J->decode(shift);
    my $s = "$b->{status} " . items(substr($b->{id}, 5), $b->{output});
    my $id = substr $b->{id}, 5;
    $s =~ s/\Q$id\E/<r>/g;
    return $s;
}

# the last request the mock got: its tools, tool_choice, parallel_tool_calls
sub upstream {
    my $b = $J->decode(shift)->[-1];
    return $J->encode({ map { exists $b->{$_} ? ($_ => $b->{$_}) : () }
                        qw(tools tool_choice parallel_tool_calls) });
}

# an OpenAI error, whole
sub oerr {
    my ($message, $param, $code) = @_;
    my $q = sub { defined $_[0] ? '"' . quotemeta($_[0]) . '"' : 'null' };
    return qr/\A\{"error":\{"message":"\Q$message\E","type":"invalid_request_error","param":@{[
        $q->($param) ]},"code":@{[ $q->($code) ]}\}\}\z/;
}

our $W = '{"type":"function","function":{"name":"get_weather","description":"The weather","parameters":{"type":"object"}}}';
our $W_C = $J->encode($J->decode($W));     # as shape() compares it

run_tests();

__DATA__

=== TEST 1: an assistant's model.tools are kept and shown; bad ones are 400 naming the field
--- request eval
["POST /assistant\n{\"name\": \"t430-new\", \"model\": {\"provider\": \"openai\", \"model\": \"echo\", \"tools\": [$main::W]}}",
 "POST /assistant\n{\"name\": \"t430-bad\", \"model\": {\"model\": \"echo\", \"tools\": {}}}",
 "POST /assistant\n{\"name\": \"t430-bad\", \"model\": {\"model\": \"echo\", \"tools\": [{\"type\": \"endCall\"}]}}",
 "POST /assistant\n{\"name\": \"t430-bad\", \"model\": {\"model\": \"echo\", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"no spaces\"}}]}}",
 "POST /assistant\n{\"name\": \"t430-bad\", \"model\": {\"model\": \"echo\", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": []}}]}}"]
--- error_code eval
[201, 400, 400, 400, 400]
--- response_body eval
[main::shape(sub { $main::J->encode($main::J->decode(shift)->{model}{tools}) }, "[$main::W_C]"),
 ::body(quotemeta ::err(400, 'model.tools must be an array')),
 ::body(quotemeta ::err(400, 'model.tools[0].type must be function (the only tools a chat can call here)')),
 ::body(quotemeta ::err(400, 'model.tools[0].function.name must be 1 to 64 letters, digits, _ or -')),
 ::body(quotemeta ::err(400, 'model.tools[0].function.parameters must be an object'))]



=== TEST 2: /chat of a session: the assistant's tools go upstream, the reply's call is its output
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S1\", \"input\": \"weather in Paris?\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200]
--- response_body eval
[main::shape(\&main::chat_out, 'completed [{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":'
     . $main::J->encode(main::args('weather in Paris?', 0)) . ',"name":"get_weather"},"id":"call_1_0","type":"function"}]}]'),
 main::shape(\&main::upstream, "{\"tools\":[$main::W_C]}")]



=== TEST 3: /chat: the results come back as role tool; upstream they follow the calls; the history keeps all four
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S1\", \"input\": [{\"role\": \"tool\", \"tool_call_id\": \"call_1_0\", \"content\": \"sunny\"}]}",
 "GET /session/$main::S1"]
--- error_code eval
[201, 200]
--- response_body eval
[main::shape(sub { $main::J->decode(shift)->{output}[0]{content} },
     '[{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1_0","type":"function","function":{"name":"get_weather","arguments":'
     . $main::J->encode(main::args('weather in Paris?', 0)) . '}}]},{"role":"tool","content":"sunny","tool_call_id":"call_1_0"}]'),
 main::shape(sub { my @m = @{ $main::J->decode(shift)->{messages} };
                   CORE::join("\n", (map { $main::J->encode($_) } @m[0 .. 2]),
                              scalar(@m) . " $m[3]{role}") },
     CORE::join("\n", '{"content":"weather in Paris?","role":"user"}',
     '{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":' . $main::J->encode(main::args('weather in Paris?', 0)) . ',"name":"get_weather"},"id":"call_1_0","type":"function"}]}',
     '{"content":"sunny","role":"tool","tool_call_id":"call_1_0"}',
     '4 assistant'))]



=== TEST 4: /chat: the general way (input as messages) records the call as the two statements do
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S5\", \"input\": [{\"role\": \"user\", \"content\": \"weather in Paris?\"}]}",
 "GET /session/$main::S5"]
--- error_code eval
[201, 200]
--- response_body eval
[main::shape(\&main::chat_out, 'completed [{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":'
     . $main::J->encode(main::args('weather in Paris?', 0)) . ',"name":"get_weather"},"id":"call_1_0","type":"function"}]}]'),
 main::shape(sub {
         my $here = $main::J->encode($main::J->decode(shift)->{messages});
         my $fast = $main::J->decode(main::psql(
             "select callhq.session_body(s) from callhq.sessions s where s.id = '$main::S1'"))->{messages};
         my $there = $main::J->encode([@$fast[0 .. 1]]);
         $here eq $there && $here =~ /tool_calls/ ? 'the same' : "$here\n$there" }, 'the same')]



=== TEST 5: /chat: parallel calls, without a session
--- request
POST /chat
{"assistantId": "43000000-0000-4000-8000-000000000002", "input": "both"}
--- error_code: 201
--- response_body eval
main::shape(\&main::chat_out, 'completed [{"content":null,"role":"assistant","tool_calls":['
    . '{"function":{"arguments":' . $main::J->encode(main::args('both', 0)) . ',"name":"get_weather"},"id":"call_1_0","type":"function"},'
    . '{"function":{"arguments":' . $main::J->encode(main::args('both', 1)) . ',"name":"get_time"},"id":"call_1_1","type":"function"}]}]')



=== TEST 6: /chat stream: the call's id, name and arguments as deltas of their paths; recorded whole
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S2\", \"input\": \"stream it\", \"stream\": true}",
 "GET /chat?sessionId=$main::S2"]
--- error_code eval
[200, 200]
--- response_body eval
[main::shape(\&main::chat_events, "chat.output[0].tool_calls[0].id call_1_0\n"
     . "chat.output[0].tool_calls[0].function.name get_weather\n"
     . "chat.output[0].tool_calls[0].function.arguments " . main::args('stream it', 0) . "\n"),
 main::shape(sub { $main::J->encode([ map { "$_->{status} " . $main::J->encode($_->{output}) } @{ $main::J->decode(shift)->{results} } ]) },
     $main::J->encode(['completed [{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":'
         . $main::J->encode(main::args('stream it', 0)) . ',"name":"get_weather"},"id":"call_1_0","type":"function"}]}]']))]



=== TEST 7: /chat stream cut mid-arguments: what came, recorded as incomplete
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S3\", \"input\": \"cut me\", \"stream\": true}",
 "GET /chat?sessionId=$main::S3"]
--- error_code eval
[200, 200]
--- response_body eval
[main::shape(\&main::chat_events, "chat.output[0].tool_calls[0].id call_1_0\n"
     . "chat.output[0].tool_calls[0].function.name get_weather\n"
     . "chat.output[0].tool_calls[0].function.arguments " . substr(main::args('cut me', 0), 0, 16) . "\n"),
 main::shape(sub { $main::J->encode([ map { "$_->{status} " . $main::J->encode($_->{output}) } @{ $main::J->decode(shift)->{results} } ]) },
     $main::J->encode(['incomplete [{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":'
         . $main::J->encode(substr(main::args('cut me', 0), 0, 16)) . ',"name":"get_weather"},"id":"call_1_0","type":"function"}]}]']))]
--- no_error_log
[alert]
[crit]



=== TEST 8: /chat: a tool message needs its tool_call_id; tool_calls only in an assistant's, well formed
--- request eval
["POST /chat\n{\"assistantId\": \"$main::TOOL\", \"input\": [{\"role\": \"tool\", \"content\": \"x\"}]}",
 "POST /chat\n{\"assistantId\": \"$main::TOOL\", \"input\": [{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": []}]}",
 "POST /chat\n{\"assistantId\": \"$main::TOOL\", \"input\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\", \"function\": {\"name\": \"f\"}}]}]}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::body(quotemeta ::err(400, 'input[0].tool_call_id is required')),
 ::body(quotemeta ::err(400, 'input[0].tool_calls is only allowed in an assistant message')),
 ::body(quotemeta ::err(400, 'input[0].tool_calls[0].function.arguments is required'))]



=== TEST 9: Responses: the request's tools, tool_choice, parallel_tool_calls go upstream; a function_call item comes back
--- request eval
["POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": \"where?\", \"tools\": [{\"type\": \"function\", \"name\": \"find\", \"parameters\": {\"type\": \"object\"}}], \"tool_choice\": \"required\", \"parallel_tool_calls\": false}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200]
--- response_body eval
[main::shape(sub { my $b = $main::J->decode($_[0]);
                   main::response_out($_[0]) . " $b->{tool_choice} "
                   . ($b->{parallel_tool_calls} ? 'parallel' : 'one') . ' '
                   . $main::J->encode($b->{tools}) },
     'completed [function_call fc_<r>_0 completed call_1_0 find ' . main::args('where?', 0)
     . '] required one [{"name":"find","parameters":{"type":"object"},"type":"function"}]'),
 main::shape(\&main::upstream,
     '{"parallel_tool_calls":false,"tool_choice":"required","tools":[{"function":{"name":"find","parameters":{"type":"object"}},"type":"function"}]}')]



=== TEST 10: Responses: the request's tools after the assistant's, one of the same name in its place
--- request eval
["POST /v1/responses\n{\"model\": \"t430-par\", \"input\": \"x\", \"store\": false, \"tools\": [{\"type\": \"function\", \"name\": \"get_time\", \"description\": \"now\"}, {\"type\": \"function\", \"name\": \"extra\"}], \"tool_choice\": {\"type\": \"function\", \"name\": \"extra\"}}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200]
--- response_body eval
[qr/"type":"function_call"/,
 main::shape(\&main::upstream,
     '{"tool_choice":{"function":{"name":"extra"},"type":"function"},"tools":[{"function":{"name":"get_weather"},"type":"function"},{"function":{"description":"now","name":"get_time"},"type":"function"},{"function":{"name":"extra"},"type":"function"}]}')]



=== TEST 11: Responses round trip in a conversation: function_call_output after the call, upstream in order
--- request eval
["POST /v1/responses\n{\"model\": \"t430-plain\", \"conversation\": \"conv_$main::CONV\", \"input\": \"weather?\", \"tools\": [{\"type\": \"function\", \"name\": \"get_weather\"}]}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"conversation\": \"conv_$main::CONV\", \"input\": [{\"type\": \"function_call_output\", \"call_id\": \"call_1_0\", \"output\": \"rain\"}], \"tools\": [{\"type\": \"function\", \"name\": \"get_weather\"}]}"]
--- error_code eval
[200, 200]
--- response_body eval
[main::shape(\&main::response_out, 'completed [function_call fc_<r>_0 completed call_1_0 get_weather ' . main::args('weather?', 0) . ']'),
 main::shape(\&main::response_out, 'completed [message completed [{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1_0","type":"function","function":{"name":"get_weather","arguments":"{\"q\":\"weather?\",\"i\":0}"}}]},{"role":"tool","content":"rain","tool_call_id":"call_1_0"}]]')]



=== TEST 12: Responses: function_call items replayed in the input go up as the assistant's calls
--- request
POST /v1/responses
{"model": "t430-plain", "input": [{"role": "user", "content": "hi"}, {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}, {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "[]"}, {"type": "function_call_output", "call_id": "c1", "output": "one"}, {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]}]}
--- error_code: 200
--- response_body eval
main::shape(\&main::response_out, 'completed [message completed [{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"c2","type":"function","function":{"name":"g","arguments":"[]"}}]},{"role":"tool","content":"one","tool_call_id":"c1"},{"role":"tool","content":"two","tool_call_id":"c2"}]]')



=== TEST 13: Responses stream, parallel calls: each item added, its argument deltas, done, then the next
--- request
POST /v1/responses
{"model": "t430-par", "input": "two", "stream": true}
--- error_code: 200
--- response_body eval
main::shape(\&main::response_events, <<"_EOE_")
response.created in_progress []
response.in_progress in_progress []
response.output_item.added 0 [function_call fc_<r>_0 in_progress call_1_0 get_weather ]
deltas 0 @{[ main::args('two', 0) ]}
response.function_call_arguments.done 0 fc_<r>_0 get_weather @{[ main::args('two', 0) ]}
response.output_item.done 0 [function_call fc_<r>_0 completed call_1_0 get_weather @{[ main::args('two', 0) ]}]
response.output_item.added 1 [function_call fc_<r>_1 in_progress call_1_1 get_time ]
deltas 1 @{[ main::args('two', 1) ]}
response.function_call_arguments.done 1 fc_<r>_1 get_time @{[ main::args('two', 1) ]}
response.output_item.done 1 [function_call fc_<r>_1 completed call_1_1 get_time @{[ main::args('two', 1) ]}]
response.completed completed [function_call fc_<r>_0 completed call_1_0 get_weather @{[ main::args('two', 0) ]}, function_call fc_<r>_1 completed call_1_1 get_time @{[ main::args('two', 1) ]}]
_EOE_



=== TEST 14: Responses stream cut mid-arguments: the call as far as it came, incomplete
--- request
POST /v1/responses
{"model": "t430-cut", "input": "cut", "stream": true}
--- error_code: 200
--- response_body eval
main::shape(\&main::response_events, <<"_EOE_")
response.created in_progress []
response.in_progress in_progress []
response.output_item.added 0 [function_call fc_<r>_0 in_progress call_1_0 get_weather ]
deltas 0 @{[ substr main::args('cut', 0), 0, 16 ]}
response.function_call_arguments.done 0 fc_<r>_0 get_weather @{[ substr main::args('cut', 0), 0, 16 ]}
response.output_item.done 0 [function_call fc_<r>_0 incomplete call_1_0 get_weather @{[ substr main::args('cut', 0), 0, 16 ]}]
response.incomplete incomplete [function_call fc_<r>_0 incomplete call_1_0 get_weather @{[ substr main::args('cut', 0), 0, 16 ]}]
_EOE_
--- no_error_log
[alert]
[crit]



=== TEST 15: GET /responses/{id}: a chat's tool calls as function_call items
--- request eval
"GET /v1/responses/resp_$main::C1"
--- error_code: 200
--- response_body eval
main::shape(\&main::response_out, 'completed [function_call fc_<r>_0 completed call_a get_weather {}, function_call fc_<r>_1 completed call_b get_time {"tz":1}]')



=== TEST 16: Responses: bad tools, tool_choice and tool items are 400 naming the parameter
--- request eval
["POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": \"x\", \"tools\": {}}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": \"x\", \"tools\": [{\"type\": \"web_search\"}]}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": \"x\", \"tools\": [{\"type\": \"function\"}]}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": \"x\", \"tools\": [{\"type\": \"function\", \"name\": \"f\", \"parameters\": 1}]}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": \"x\", \"tool_choice\": \"sometimes\"}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": [{\"type\": \"function_call_output\", \"output\": \"o\"}]}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": [{\"type\": \"function_call_output\", \"call_id\": \"c\"}]}",
 "POST /v1/responses\n{\"model\": \"t430-plain\", \"input\": [{\"type\": \"function_call\", \"call_id\": \"c\", \"name\": \"a b\", \"arguments\": \"{}\"}]}"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[main::oerr("Invalid type for 'tools': expected an array of tools.", 'tools', 'invalid_type'),
 main::oerr("Invalid value for 'tools[0].type': only function tools are supported.", 'tools[0].type', 'invalid_value'),
 main::oerr("Missing required parameter: 'tools[0].name'.", 'tools[0].name', 'missing_required_parameter'),
 main::oerr("Invalid type for 'tools[0].parameters'.", 'tools[0].parameters', 'invalid_type'),
 main::oerr(q{Invalid value for 'tool_choice': expected \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"name\": ...}.}, 'tool_choice', 'invalid_value'),
 main::oerr("Missing required parameter: 'input[0].call_id'.", 'input[0].call_id', 'missing_required_parameter'),
 main::oerr("Missing required parameter: 'input[0].output'.", 'input[0].output', 'missing_required_parameter'),
 main::oerr("Invalid value for 'input[0].name': 1 to 64 letters, digits, _ or -.", 'input[0].name', 'invalid_value')]
