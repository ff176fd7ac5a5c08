package Test::Nginx::Socket;

# A small, independent stand-in for OpenResty's Test::Nginx::Socket,
# used only when the real module is not installed.  It reads the same
# Test::Base data blocks ("=== TEST 1: ...", "--- config", "--- request",
# ...), starts nginx afresh for each block from a generated nginx.conf,
# sends the requests over a plain socket and checks the responses and the
# error log, printing TAP with the same test names as the real module.
#
# What it supports is listed in the POD at the end of this file; sections
# it does not know are ignored, as the real module ignores unknown ones.

use strict;
use warnings;

use Test::Base -base;    # blocks(), plan(), filters; we are its subclass
use Test::Nginx::Util;

use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(max min shuffle);
use POSIX qw(EAGAIN EINTR WNOHANG);
use Scalar::Util qw(looks_like_number);
use Test::More ();
use Time::HiRes qw(sleep time);

our $VERSION = '0.01';

# Test::Base's own exports (plan, blocks, is, like, ...) come on top.
our @EXPORT = qw(
    run_tests run_test is_str env_to_nginx repeat_each workers
    worker_connections master_on master_off master_process_enabled
    no_long_string log_level no_shuffle no_root_location
    server_name server_addr server_root html_dir server_port
    server_port_for_client timeout check_accum_error_log config_preamble
    add_block_preprocessor add_cleanup_handler add_test_cleanup_handler
    bail_out
);

my $ConnectFailures = 0;

# ------------------------------------------------------------ the driver

sub run_tests () {
    srand($$ ^ int(time * 1_000_000));
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
        cleanup_test($block);
    }
}

sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;

    my $name = $block->name;
    local $Test::Nginx::Util::RandPorts = {};
    local $Test::Nginx::Util::LogLevel = $block->log_level || $LogLevel;

    my $config = expand_env_in_text($block->config, $name);

    if (defined $block->must_die) {
        return run_must_die($block, $config // '');
    }

    my ($skip_count, $skip_reason) = skip_spec($block);
    my $started;

    if (!defined $skip_count) {
        if (defined $config) {
            start_nginx($block, $config);
            $started = 1;

        } elsif (nginx_is_running()) {
            # no config: reuse the running nginx, check only our log lines
            $Test::Nginx::Util::ErrLogFilePos = -s $ErrLogFile || 0;

        } else {
            bail_out("$name - No '--- config' section specified and no "
                     . "nginx from a previous block is running");
        }
    }

    if (defined(my $init = $block->init)) {
        eval $init;
        bail_out("$name - init failed: $@") if $@;
    }

    for my $rep (0 .. $RepeatEach - 1) {
        write_user_files($block) if $rep > 0;

        if (defined $skip_count) {
            SKIP: { Test::More::skip("$name - $skip_reason", $skip_count) }
            next;
        }

        run_requests($block, $rep);
    }

    check_valgrind($block) if $UseValgrind && $started;
}

# "--- skip_nginx: 3: < 1.19.0 [: reason]" and "--- skip_eval: 3: perl"
# return (number of tests to skip, reason) when the block is to be skipped.
sub skip_spec ($) {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $spec = $block->skip_eval)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- skip_eval spec: $spec");
        my $count = $1;
        my $hit = eval $2;
        bail_out("$name - skip_eval - failed to eval \"$2\": $@") if $@;
        return ($count, 'skip_eval') if $hit;
    }

    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^ \s* (\d+) \s* : \s* ([<>]=?) \s* (\d+)\.(\d+)\.(\d+)
                    (?: \s* : \s* (.*?) )? \s* $/x
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        my ($count, $op, $reason) = ($1, $2, $6);
        my $want = canon_version($3, $4, $5);
        my $have = $NginxVersion;
        my %cmp = ('<'  => $have <  $want, '<=' => $have <= $want,
                   '>'  => $have >  $want, '>=' => $have >= $want);
        return ($count, $reason || "nginx version $op $3.$4.$5")
            if $cmp{$op};
    }

    return;
}

# "--- must_die [: exit code]": nginx must refuse to start.
sub run_must_die ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;
    my $expected = $block->must_die;
    local $Test::Nginx::Util::DaemonEnabled = 'on';    # even with valgrind

    for my $rep (0 .. $RepeatEach - 1) {
        prepare_nginx($block, $config);
        my $status = run_nginx_once();

        if (looks_like_number($expected)) {
            Test::More::is($status >> 8, $expected,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        check_error_log($block, $rep);

        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; "
                 . "killing it (req $rep)\n";
            stop_nginx();
        }
    }
}

# In valgrind mode nginx is stopped after every block, so that its leak
# report belongs to the block; any valgrind record fails the block.
sub check_valgrind ($) {
    my $block = shift;
    stop_nginx();
    my @report = read_valgrind_errors() or return;
    Test::More::fail($block->name . " - valgrind reported errors");
    my $shown = min($#report, 199);
    Test::More::diag(join '', @report[0 .. $shown]);
}

# --------------------------------------------------- requests, responses

sub run_requests ($$) {
    my ($block, $rep) = @_;
    my $name = $block->name;

    my ($requests, $pipelined) = build_requests($block);
    my $timeout = parse_time($block->timeout) // $Timeout;
    my $need_array = $pipelined ? 1 : @$requests > 1;
    my $total = $pipelined || @$requests;
    my $idx = 0;

    for my $packets (@$requests) {
        my ($raw, $is_head) = send_request($block, $packets, $timeout);

        for (1 .. ($pipelined || 1)) {
            my ($res, $raw_headers, $left) =
                parse_response($name, $raw // '', $is_head);

            if ($pipelined) {
                $raw = $left;
            } elsif (defined $left && length $left) {
                (my $shown = $left) =~
                    s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/ge;
                warn "WARNING: $name - unexpected extra bytes after last "
                     . "chunk in response: \"$shown\"\n";
            }

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $idx,
                                       $need_array);
                check_response_body($block, $res, $idx, $rep, $need_array);
            }

            if (++$idx < $total) {
                check_logs($block, $rep);
            }
        }
    }

    check_logs($block, $rep);
}

sub check_logs ($$) {
    my ($block, $rep) = @_;
    sleep $block->wait if $block->wait;
    check_error_log($block, $rep);
    check_access_log($block, $rep) unless defined $block->ignore_response;
}

# Returns ([packets of request 1], [packets of request 2], ...) and, for
# --- pipelined_requests, the number of responses expected on the one
# connection.  A packet is { value => bytes, delay_before => seconds }.
sub build_requests ($) {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        my @bits = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return ([[map { ref $_ ? $_ : { value => $_ } } @bits]], 0);
    }

    my $more = $block->more_headers // '';
    my $headers_for = sub {
        my $i = shift;
        return $more unless ref $more eq 'ARRAY';
        return $more->[$i]
            // bail_out("$name - --- more_headers lacks data for request $i");
    };

    if (defined(my $reqs = $block->pipelined_requests)) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            my $req = expand_env_in_text($reqs->[$i], $name);
            $all .= $_->{value}
                for @{ build_request($name, $req, $headers_for->($i), $conn) };
        }
        return ([[{ value => $all }]], scalar @$reqs);
    }

    my $request = $block->request;
    bail_out("$name - request empty") unless defined $request;

    if (!ref $request) {
        # drop leading blank and "#" comment lines
        1 while $request =~ s/^\s*#[^\n]+\s+|^\s+//;
        return ([build_request($name, $request, $headers_for->(0), 'close')],
                0);
    }

    bail_out("$name - invalid --- request: MUST be string or array of "
             . "requests") unless ref $request eq 'ARRAY';

    return ([map { build_request($name, $request->[$_], $headers_for->($_),
                                 'close') } 0 .. $#$request], 0);
}

# "Name: value" lines (blank and "#" lines skipped) to CRLF header text.
sub parse_more_headers ($) {
    my $text = shift // '';
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, $text) {
        next if $line =~ /^\s*#/ || $line !~ /\S/;
        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';
        $chunked = 1 if lc $key eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

# Turn "METHOD [URI [VERSION]]\nbody" (a string, or an array of packets
# that join into one) into a full HTTP request, keeping packet boundaries.
sub build_request ($$$$) {
    my ($name, $req, $more_headers, $conn) = @_;

    my @packets = map {
        ref $_ eq 'HASH' ? {%$_}
        : !ref $_        ? { value => $_ }
        : bail_out("$name - Invalid syntax. $_ should be a string or hash "
                   . "with value.")
    } ref $req eq 'ARRAY' ? @$req : ($req);

    my $text = join '', map { $_->{value} // '' } @packets;
    my ($line, $body) = $text =~ /\A([^\n]*)\n?(.*)\z/s;
    $line =~ /^(\s*)(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(\S+))?\s*$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$line\".");
    my ($indent, $method, $uri, $version) =
        (length $1, $2, $3 // '/', $4 // 'HTTP/1.1');

    my ($more, $chunked) = parse_more_headers($more_headers);

    my ($content_length, $body_skip) = ('', 0);
    if (!$chunked && $body ne '' && $more !~ /(?:^|\n)Content-Length:/) {
        $body_skip = length(($body =~ /^(\s*)/)[0]);
        $body =~ s/^\s+|\s+$//g;
        $content_length = "Content-Length: " . length($body) . "\r\n";
    }

    my $head = "$method $uri $version\r\n";
    $head .= "Host: $ServerName\r\n" unless $more =~ /(?:^|\n)Host:/i;
    $head .= "Connection: $conn\r\n" unless $more =~ /(?:^|\n)Connection/i;
    $head .= "$more$content_length\r\n";
    my $full = $head . $body;

    # Map each original packet boundary into the rewritten request: inside
    # the request line it stays at the same spot, in the body likewise.
    my ($pos, $start) = (0, 0);
    my $line_len = length($line) + 1;
    my $request_line_len = length "$method $uri $version";
    for my $i (0 .. $#packets) {
        my $end = length $full;
        if ($i < $#packets) {
            $pos += length($packets[$i]{value} // '');
            $end = $pos < $line_len
                ? min(max($pos - $indent, 0), $request_line_len)
                : length($head)
                  + min(max($pos - $line_len - $body_skip, 0), length $body);
            $end = max($end, $start);
        }
        $packets[$i]{value} = substr $full, $start, $end - $start;
        $start = $end;
    }

    return \@packets;
}

sub connect_to_server ($$) {
    my ($block, $timeout) = @_;
    my $name = $block->name;
    my $addr = $block->server_addr_for_client // $ServerAddr;
    my $where = "$addr:$ServerPortForClient";
    my $tries = $ConnectFailures ? 20 : 50;
    my $err;

    for my $try (1 .. $tries) {
        my $sock = IO::Socket::INET->new(PeerAddr => $addr,
            PeerPort => $ServerPortForClient, Proto => 'tcp',
            Timeout => $timeout);
        return $sock if $sock;
        $err = $!;

        my $child = $Test::Nginx::Util::ChildPid;
        if ($child && waitpid($child, WNOHANG) != 0) {
            undef $Test::Nginx::Util::ChildPid;
            warn `tail -n20 $ErrLogFile`;
            Test::More::fail("$name - Can't connect to $where: $err "
                             . "(nginx is gone)");
            return;
        }

        my $wait = min(1, sleep_time() * (1 + $try) * $try / 2);
        warn "$name - Can't connect to $where: $err\n"
             . "\tRetry connecting after $wait sec\n" if $wait >= 0.6;
        sleep $wait;
    }

    my $msg = "$name - Can't connect to $where: $err (aborted)\n";
    bail_out($msg) if ++$ConnectFailures >= 3;
    Test::More::fail($msg);
    return;
}

# Send the packets (sleeping delay_before between them) and read until
# the server closes the connection; each wait is bounded by $timeout.
sub send_request ($$$) {
    my ($block, $packets, $timeout) = @_;
    my $name = $block->name;

    my $is_head = (join '', map { $_->{value} } @$packets) =~ /^\s*HEAD\s/;
    my $sock = connect_to_server($block, $timeout)
        or return (undef, $is_head);
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my @queue = @$packets;
    my $out = (shift @queue)->{value};
    my $writing = 1;
    my $resp = '';
    my $sel = IO::Select->new($sock);

    while (1) {
        my ($readable, $writable) =
            IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);

        if (!$readable && !$writable) {
            Test::More::fail("ERROR: client socket timed out - $name\n")
                unless defined $block->abort;
            last;
        }

        if ($writable && @$writable) {
            my $n = syswrite $sock, $out;
            if (defined $n) {
                substr($out, 0, $n, '');
            } elsif ($! != EAGAIN && $! != EINTR) {
                warn "WARNING: $name - write failed: $!\n";
                $writing = 0;
            }

            while ($writing && $out eq '') {
                if (my $next = shift @queue) {
                    my $delay = $next->{delay_before}
                                // $block->raw_request_middle_delay;
                    sleep $delay if $delay;
                    $out = $next->{value};
                    next;
                }
                $writing = 0;
                if (defined(my $how = $block->shutdown)) {
                    shutdown $sock, ($how =~ /\S/ ? $how : 1);
                }
            }
        }

        if ($readable && @$readable) {
            my $n = sysread $sock, my $chunk, 65536;
            if (!defined $n) {
                next if $! == EAGAIN || $! == EINTR;
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;
            $resp .= $chunk;
        }
    }

    close $sock;
    return ($resp, $is_head);
}

# Returns (HTTP::Response with the decoded body, raw header text, bytes
# after the end of this response), or () when the body is malformed.
sub parse_response ($$$) {
    my ($name, $raw, $is_head) = @_;

    my $raw_headers = $raw =~ /^(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    $res->code(undef) if defined $code && $code !~ /^\d+$/;
    return ($res, $raw_headers)
        if $res->code && ($res->code == 304 || $res->code == 101);

    my $te = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $body = $res->content // '';
    my $left;

    if (defined $te && $te eq 'chunked') {
        ($body, $left, my $err) = decode_chunked($body);
        if (defined $err) {
            Test::More::fail("$name - $err");
            return;
        }
        $res->content($body);

    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        } elsif (length $body < $len && !$is_head) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($body) . "\n";
        }
    }

    return ($res, $raw_headers, $left);
}

# Returns (body, bytes after the last chunk, error message).
sub decode_chunked ($) {
    my $raw = shift;
    my $body = '';
    pos($raw) = 0;

    while (1) {
        if ($raw !~ /\G[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
            my $rest = substr $raw, pos($raw) // 0;
            return (undef, undef, length $rest
                ? "invalid chunked body received: $rest"
                : "no last chunk found - $raw");
        }

        my $size = hex $1;
        if ($size == 0) {
            1 while $raw =~ /\G[^\r\n]+\r\n/gc;    # trailer fields
            $raw =~ /\G\r\n/gc
                or return (undef, undef,
                           "invalid chunked data received (expected CRLF).");
            return ($body, substr($raw, pos $raw));
        }

        return (undef, undef, "invalid chunked data received (not enough "
                              . "octets for the data section)")
            if length($raw) - pos($raw) < $size;
        $body .= substr $raw, pos($raw), $size;
        pos($raw) += $size;
        $raw =~ /\G\r\n/gc
            or return (undef, undef,
                       "invalid chunked data received (expected CRLF).");
    }
}

# ---------------------------------------------------------------- checks

# With several requests in a block, expectations must be arrays with one
# element per request.
sub indexed_value ($$$$) {
    my ($name, $value, $idx, $need_array) = @_;
    my $is_array = ref $value && ref $value eq 'ARRAY';
    if ($need_array) {
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.") unless $is_array;
        return $value->[$idx];
    }
    return $is_array ? $value->[0] : $value;
}

sub with_ports ($) {
    my $s = shift;
    $s =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
    $s =~ s/\$ServerPort\b/$ServerPort/g;
    return $s;
}

sub check_error_code ($$$$) {
    my ($block, $res, $idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->code) || '';

    if (defined(my $like = $block->error_code_like)) {
        my $pat = indexed_value($name, $like, $idx, $need_array);
        Test::More::like($code, qr/$pat/sm, "$name - status code ok");
    } elsif (defined(my $want = $block->error_code)) {
        Test::More::is($code, indexed_value($name, $want, $idx, $need_array),
                       "$name - status code ok");
    } else {
        Test::More::is($code, 200, "$name - status code ok");
    }
}

# "Name: value" lines; "!Name" means the header must be absent.
sub expected_headers ($) {
    my $text = shift // '';
    my (%value, @order);
    for my $line (split /\n/, $text) {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        my ($key, $val) = $line =~ s/^!\s*//
            ? ($line, undef)
            : split /\s*:\s*/, $line, 2;
        push @order, $key unless exists $value{$key};
        $value{$key} = $val;
    }
    return map { [$_, $value{$_}] } @order;
}

sub check_response_headers ($$$$$) {
    my ($block, $res, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;

    if (defined(my $spec = $block->response_headers)) {
        for (expected_headers(indexed_value($name, $spec, $idx, $need_array))) {
            my ($key, $val) = @$_;
            if (!defined $val) {
                Test::More::unlike($raw_headers // '', qr/^\s*\Q$key\E\s*:/ms,
                    "$name - header $key not present in the raw headers");
                next;
            }
            my $got = $res ? scalar $res->header($key) : undef;
            Test::More::is($got // '', with_ports($val),
                           "$name - header $key ok");
        }

    } elsif (defined($spec = $block->response_headers_like)) {
        for (expected_headers(indexed_value($name, $spec, $idx, $need_array))) {
            my ($key, $pat) = @$_;
            my $got = $res ? scalar $res->header($key) : undef;
            Test::More::like($got // '', qr/^$pat$/,
                             "$name - header $key like ok");
        }
    }
}

sub check_response_body ($$$$$) {
    my ($block, $res, $idx, $rep, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;

    if (defined $block->response_body) {
        my $expected =
            indexed_value($name, $block->response_body, $idx, $need_array);
        my $where = "(repeated req $rep, req $idx)";
        if (ref $expected) {
            Test::More::like($content, $expected,
                             "$name - response_body - like $where");
        } else {
            $expected = expand_env_in_text(with_ports($expected), $name)
                if defined $expected;
            is_str($content, $expected,
                   "$name - response_body - response is expected $where");
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $spec = $type eq 'like' ? $block->response_body_like
                                   : $block->response_body_unlike;
        my $pat = with_ports(indexed_value($name, $spec, $idx, $need_array));
        my $summary = trim($content) // '';
        my $desc = "$name - response_body_$type - response is expected "
                   . "($summary)";
        if ($type eq 'like') {
            Test::More::like($content, qr/$pat/s, $desc);
        } else {
            Test::More::unlike($content, qr/$pat/s, $desc);
        }
    }
}

# Expected log patterns: one substring per line, a qr//, or an array of
# substrings and qr//s.
sub log_patterns ($) {
    my $spec = shift;
    return [$spec] if ref $spec eq 'Regexp';
    return [grep { defined } @$spec] if ref $spec eq 'ARRAY';
    chomp $spec;
    return [split /\n+/, $spec];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub mentions ($$) {
    my ($spec, $word) = @_;
    return 0 unless defined $spec;
    return grep { index("$_", $word) >= 0 } @{ log_patterns($spec) };
}

sub check_log_has ($$$$$) {
    my ($name, $spec, $lines, $file, $rep) = @_;
    my @pending = @{ log_patterns($spec) };
    for my $line (@$lines) {
        @pending = grep {
            my $hit = line_matches($line, $_);
            Test::More::pass("$name - pattern \"$_\" matches a line in "
                             . "$file (req $rep)") if $hit;
            !$hit;
        } @pending;
    }
    Test::More::fail("$name - pattern \"$_\" should match a line in $file "
                     . "(req $rep)") for @pending;
}

sub check_log_lacks ($$$$$) {
    my ($name, $spec, $lines, $file, $rep) = @_;
    my @pats = @{ log_patterns($spec) };
    my %found;
    for my $i (0 .. $#$lines) {
        for my $p (0 .. $#pats) {
            next unless line_matches($lines->[$i], $pats[$p]);
            $found{$p} = 1;
            my $after = join '', @$lines[$i + 1 .. min($i + 9, $#$lines)];
            Test::More::fail(sprintf "%s - pattern \"%s\" should not match "
                . "any line in %s but matches line \"%s\" (req %d)\n%s",
                $name, fmt_str($pats[$p]), $file, fmt_str($lines->[$i]),
                $rep, $after);
        }
    }
    for my $p (grep { !$found{$_} } 0 .. $#pats) {
        Test::More::pass("$name - pattern \"" . fmt_str($pats[$p])
                         . "\" does not match a line in $file (req $rep)");
    }
}

sub check_error_log ($$) {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $lines;
    my $log = sub { $lines //= error_log_data() };

    my $grep = $block->grep_error_log;
    my $grep_out = $block->grep_error_log_out;
    if (!defined $grep && defined $grep_out) {
        bail_out("$name - No --- grep_error_log defined but "
                 . "--- grep_error_log_out is defined");
    }
    $grep = $grep->[$rep] if ref $grep eq 'ARRAY';

    if (defined $grep) {
        bail_out("$name - No --- grep_error_log_out defined but "
                 . "--- grep_error_log is defined") unless defined $grep_out;
        my $expected = ref $grep_out eq 'ARRAY' ? $grep_out->[$rep] : $grep_out;
        $expected = expand_env_in_text($expected, $name) unless ref $expected;

        my $got = '';
        for my $line (@{ $log->() }) {
            my $hit = ref $grep ? $line =~ $grep : $line =~ /\Q$grep\E/;
            $got .= "$&\n" if $hit && $& !~ /\n/;
        }
        is_str($got, $expected, "$name - grep_error_log_out (req $rep)");
    }

    my $error_log = $block->error_log;
    my $no_error_log = $block->no_error_log;
    check_log_has($name, $error_log, $log->(), 'error.log', $rep)
        if defined $error_log;
    check_log_lacks($name, $no_error_log, $log->(), 'error.log', $rep)
        if defined $no_error_log;

    # Like the real module: warn about alert/crit/emerg lines the block did
    # not ask about, and fail on assertion failures.
    for my $level (qw(alert crit emerg)) {
        next if mentions($error_log, "[$level")
             || mentions($no_error_log, "[$level");
        warn "WARNING: $name - " . fmt_str($_) . "\n"
            for grep { /\[$level\]/ } @{ $log->() };
    }
    for my $line (@{ $log->() }) {
        next unless $line =~ /\bAssertion .*?failed\b/;
        chomp(my $l = $line);
        Test::More::fail("$name - $l\n");
    }
}

sub check_access_log ($$) {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $lines;

    if (defined(my $spec = $block->access_log)) {
        check_log_has($name, $spec, $lines //= access_log_data(),
                      'access.log', $rep);
    }
    if (defined(my $spec = $block->no_access_log)) {
        check_log_lacks($name, $spec, $lines //= access_log_data(),
                        'access.log', $rep);
    }
}

1;
__END__

=head1 NAME

Test::Nginx::Socket - fallback for OpenResty's Test::Nginx::Socket

=head1 SYNOPSIS

    use Test::Nginx::Socket 'no_plan';   # or: plan tests => ...;
    repeat_each(2);
    no_shuffle();
    run_tests();

    __DATA__

    === TEST 1: hello
    --- config
        location /t { return 200 "hello\n"; }
    --- request
    GET /t
    --- response_body
    hello
    --- no_error_log
    [error]

=head1 DESCRIPTION

Used only where the real Test::Nginx is not installed: run the suites with
C<-I t/lib> only when C<perl -MTest::Nginx::Socket -e1> fails without it.

Functions: plan, blocks and the other Test::Base exports, run_tests,
repeat_each, no_shuffle, log_level, master_on, master_off,
master_process_enabled, workers, worker_connections, no_root_location,
no_long_string, check_accum_error_log, env_to_nginx, add_block_preprocessor,
config_preamble, server_addr, server_name, server_port,
server_port_for_client, server_root, html_dir, timeout, is_str, bail_out,
add_cleanup_handler, add_test_cleanup_handler.

Sections: config, http_config, main_config, post_main_config, server_name,
request (string or eval'd array of requests, each a string or an array of
packets C<{ value, delay_before }>), raw_request, raw_request_middle_delay,
pipelined_requests, more_headers (string or array), shutdown, timeout,
abort, wait, init, user_files, error_code, error_code_like,
response_headers, response_headers_like, response_body,
response_body_like, response_body_unlike, ignore_response, error_log,
no_error_log, grep_error_log, grep_error_log_out, access_log,
no_access_log, log_level, must_die, skip_nginx, skip_eval, ONLY, SKIP,
LAST.

Environment: TEST_NGINX_BINARY, TEST_NGINX_PORT (or _SERVER_PORT and
_CLIENT_PORT), TEST_NGINX_SERVROOT, TEST_NGINX_LOAD_MODULES,
TEST_NGINX_LOG_LEVEL, TEST_NGINX_MASTER_PROCESS, TEST_NGINX_NO_SHUFFLE,
TEST_NGINX_NO_CLEAN, TEST_NGINX_TIMEOUT, TEST_NGINX_SLEEP,
TEST_NGINX_CHECK_ACCUM_ERR_LOG, TEST_NGINX_RANDOMIZE and
TEST_NGINX_USE_VALGRIND.  C<$TEST_NGINX_*> variables, including
C<$TEST_NGINX_RAND_PORT_N>, are expanded in the config sections,
user_files, pipelined_requests, response_body and grep_error_log_out (not
in request, as in the real module).

Under TEST_NGINX_USE_VALGRIND nginx runs in the foreground under valgrind
(with ./valgrind.suppress and the file named by
TEST_NGINX_VALGRIND_SUPPRESSIONS, when present) and is stopped after each block;
any record valgrind wrote (logs/valgrind.log) fails the block.  The real
module only prints valgrind's output.

=cut
