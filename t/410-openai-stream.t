# POST /v1/responses with "stream": true: OpenAI's event sequence, each
# event numbered by sequence_number, as the official SDKs rebuild the
# Response from it (response.created, response.in_progress,
# response.output_item.added, response.content_part.added, the deltas,
# response.output_text.done, response.content_part.done,
# response.output_item.done, response.completed or, for a cut stream,
# response.incomplete).
#
# Each body is summed up by main::events below, one line per event with
# what the SDK checks of it, so that the blocks compare event by event.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);
use JSON::PP ();

our $CONFIG = <<'_EOC_' . model_locations();
location /v1/ {
    callhq_openai;
    callhq_model_location /_model;
}
_EOC_

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

# 41000000-0000-4000-8000-0000000000NN: 01 o410-parrot, 02 o410-cut
# (the mock's parrot model: the reply is the input; cut-after-2: two
# deltas, then the model's connection closes)
psql(q{
    delete from callhq.chats
     where assistant_id::text like '41000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '41000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb
      from callhq.api_keys k,
           (values
            ('41000000-0000-4000-8000-000000000001', 'o410-parrot',
             '{"provider": "openai", "model": "parrot"}'),
            ('41000000-0000-4000-8000-000000000002', 'o410-cut',
             '{"provider": "openai", "model": "parrot+cut-after-2"}'))
           v(id, name, model)
     where k.key_hash = sha256('cq_test_a');
});

# One line per event: its sequence_number and type, then what it carries
# (the ids must be the response's and its message's, the same
# throughout); the deltas in between as one line of their joined text.
sub events {
    my $body = shift;
    my $json = JSON::PP->new->canonical;
    my (@out, $resp, $msg, $deltas, $ndeltas, $seq);
    $seq = 0;
    for my $block (split /\n\n/, $body) {
        my ($name) = $block =~ /^event: (.*)$/m;
        my ($data) = $block =~ /^data: (.*)$/m;
        my $e = $json->decode($data);
        my $t = $e->{type};
        my $line = "$e->{sequence_number} $t";
        $line .= " (event: $name)" if $name ne $t;
        $line .= " (sequence_number $seq expected)" if $e->{sequence_number} != $seq;
        $seq++;
        if (my $r = $e->{response}) {
            $resp //= $r->{id};
            $line .= " $r->{status} output=" . scalar(@{ $r->{output} });
            $line .= " id " . ($r->{id} eq $resp ? 'same' : 'differs');
            $line .= " text=" . $r->{output}[0]{content}[0]{text} if @{ $r->{output} };
            $line .= " usage=" . ($r->{usage} ? 'yes' : 'null');
        }
        if (my $i = $e->{item}) {
            $msg //= $i->{id};
            $line .= " item $i->{type} $i->{status} id "
                     . ($i->{id} eq $msg && $msg eq "msg_" . substr($resp, 5)
                        ? 'msg_<response>' : 'differs')
                     . " content=" . scalar(@{ $i->{content} });
            $line .= " text=" . $i->{content}[0]{text} if @{ $i->{content} };
        }
        if (exists $e->{item_id}) {
            $line .= " at $e->{output_index}/" . ($e->{content_index} // '-')
                     . ($e->{item_id} eq $msg ? '' : ' item_id differs');
        }
        $line .= " part $e->{part}{type} text=$e->{part}{text}" if $e->{part};
        $line .= " text=$e->{text}" if exists $e->{text};
        if ($t eq 'response.output_text.delta') {
            $deltas .= $e->{delta};
            $ndeltas++;
            next if $ndeltas > 1;
            $line = "... response.output_text.delta";
        }
        push @out, $line;
    }
    s/^\.\.\. response.output_text.delta$/deltas: $deltas/ for @out;
    return join("\n", @out) . "\n";
}

# the body, summed up by events(), is exactly $want (else the difference
# is shown)
sub events_are {
    my $want = shift;
    return qr/\A(?(?{ main::same(main::events($_), $want) })|(*FAIL))/s;
}

sub same {
    my ($got, $want) = @_;
    Test::More::diag("events:\n$got") if $got ne $want;
    return $got eq $want;
}

run_tests();

__DATA__

=== TEST 1: the whole sequence, numbered from 0, ids the same throughout
--- request
POST /v1/responses
{"model": "o410-parrot", "input": "one two three four", "stream": true}
--- response_headers
Content-Type: text/event-stream
Cache-Control: no-cache
--- response_body eval
main::events_are(<<'_EOE_')
0 response.created in_progress output=0 id same usage=null
1 response.in_progress in_progress output=0 id same usage=null
2 response.output_item.added item message in_progress id msg_<response> content=0
3 response.content_part.added at 0/0 part output_text text=
deltas: one two three four
8 response.output_text.done at 0/0 text=one two three four
9 response.content_part.done at 0/0 part output_text text=one two three four
10 response.output_item.done item message completed id msg_<response> content=1 text=one two three four
11 response.completed completed output=1 id same text=one two three four usage=yes
_EOE_



=== TEST 2: a stream cut by the model: what arrived, as response.incomplete
--- request
POST /v1/responses
{"model": "o410-cut", "input": "one two three four", "stream": true}
--- response_body eval
main::events_are(<<'_EOE_')
0 response.created in_progress output=0 id same usage=null
1 response.in_progress in_progress output=0 id same usage=null
2 response.output_item.added item message in_progress id msg_<response> content=0
3 response.content_part.added at 0/0 part output_text text=
deltas: one two 
6 response.output_text.done at 0/0 text=one two 
7 response.content_part.done at 0/0 part output_text text=one two 
8 response.output_item.done item message incomplete id msg_<response> content=1 text=one two 
9 response.incomplete incomplete output=1 id same text=one two  usage=yes
_EOE_
--- no_error_log
[alert]
[crit]
