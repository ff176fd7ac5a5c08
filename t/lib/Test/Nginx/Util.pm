package Test::Nginx::Util;

# Settings, nginx.conf generation and nginx process control for the
# fallback Test::Nginx::Socket in this directory.  Only used when the real
# OpenResty Test::Nginx is not installed; see Socket.pm.

use strict;
use warnings;

use base 'Exporter';

use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::INET ();
use POSIX qw(SIGQUIT SIGKILL WNOHANG);
use Test::LongString ();
use Test::More ();
use Time::HiRes qw(sleep);

our @EXPORT = qw(
    $ServerAddr $ServerName $ServerPort $ServerPortForClient
    $ServRoot $HtmlDir $LogDir $ErrLogFile $AccLogFile $ConfFile $PidFile
    $NginxBinary $NginxVersion $RepeatEach $Timeout $LogLevel $UseValgrind
    $NoLongString $NoShuffle $TestNginxSleep @BlockPreprocessors
    server_addr server_name server_port server_port_for_client
    server_root html_dir repeat_each workers worker_connections log_level
    master_on master_off master_process_enabled no_shuffle no_root_location
    no_long_string check_accum_error_log env_to_nginx add_block_preprocessor
    timeout sleep_time config_preamble add_cleanup_handler
    add_test_cleanup_handler bail_out is_str parse_time trim fmt_str
    expand_env_in_text get_nginx_version canon_version
    prepare_nginx start_nginx stop_nginx nginx_is_running run_nginx_once
    write_user_files error_log_data access_log_data
    read_valgrind_errors cleanup_test
);

sub bail_out (@);

# ---------------------------------------------------------------- settings

our $ServerAddr          = '127.0.0.1';
our $ServerName          = 'localhost';
our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                           || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $NginxBinary         = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LogLevel            = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcess       = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $NoShuffle           = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $CheckAccumErrLog    = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $Timeout             = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep      = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LoadModules         = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind         = $ENV{TEST_NGINX_USE_VALGRIND};
our $Randomize           = $ENV{TEST_NGINX_RANDOMIZE};
our $NoClean             = $ENV{TEST_NGINX_NO_CLEAN};

our $Workers           = 1;
our $WorkerConnections = 64;
our $RepeatEach        = 1;
our $NoRootLocation    = 0;
our $NoLongString      = 0;
our $ConfigPreamble    = '';
our $NginxVersion;         # canonical form, e.g. 1.022001
our $RandPorts = {};       # TEST_NGINX_RAND_PORT_N -> port, per block
our $ErrLogFilePos = 0;
our $ChildPid;             # nginx run in the foreground (valgrind mode)
our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @TestCleanupHandlers);

# valgrind needs nginx in the foreground, as a child of ours
our $DaemonEnabled = $UseValgrind ? 'off' : 'on';

my $MainPid = $$;

if ($Randomize) {
    $ServerPort = $ServerPortForClient = gen_rand_port()
        or die "Cannot find a free port for TEST_NGINX_RANDOMIZE\n";
}

our $ServRoot = $Randomize
    ? File::Spec->rel2abs("t/servroot_$ServerPort")
    : ($ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot'));
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = "$ServRoot/logs";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $CacheDir   = "$ServRoot/cache";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $PidFile    = "$LogDir/nginx.pid";
our $ConfFile   = "$ConfDir/nginx.conf";
our $ValgrindLog = "$LogDir/valgrind.log";

# A setter when given an argument, a getter otherwise.
sub server_addr (@)            { @_ ? ($ServerAddr = shift) : $ServerAddr }
sub server_name (@)            { @_ ? ($ServerName = shift) : $ServerName }
sub server_port (@)            { @_ ? ($ServerPort = shift) : $ServerPort }
sub server_port_for_client (@) {
    @_ ? ($ServerPortForClient = shift) : $ServerPortForClient;
}
sub repeat_each (@)        { $RepeatEach = shift if @_; $RepeatEach }
sub workers (@)            { @_ ? ($Workers = shift) : $Workers }
sub worker_connections (@) {
    @_ ? ($WorkerConnections = shift) : $WorkerConnections;
}
sub log_level (@)          { @_ ? ($LogLevel = shift) : $LogLevel }
sub timeout (@)            { @_ ? ($Timeout = shift) : $Timeout }
sub master_process_enabled (@) {
    return $MasterProcess unless @_;
    $MasterProcess = shift() ? 'on' : 'off';
}
sub master_on ()              { $MasterProcess = 'on' }
sub master_off ()             { $MasterProcess = 'off' }
sub no_shuffle ()             { $NoShuffle = 1 }
sub no_root_location ()       { $NoRootLocation = 1 }
sub no_long_string ()         { $NoLongString = 1 }
sub check_accum_error_log ()  { $CheckAccumErrLog = 1 }
sub server_root ()            { $ServRoot }
sub html_dir ()               { $HtmlDir }
sub sleep_time ()             { $TestNginxSleep }
sub config_preamble ($)       { $ConfigPreamble = shift }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)      { unshift @CleanupHandlers, shift }
sub add_test_cleanup_handler ($) { unshift @TestCleanupHandlers, shift }

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $name (@_) {
        die "env_to_nginx: bad argument value: $name\n"
            if $name !~ /^[A-Za-z_]/ || $name =~ /\n/;
        push @EnvToNginx, $name;
    }
}

# ----------------------------------------------------------------- helpers

sub bail_out (@) {
    $_->() for @CleanupHandlers;
    Test::More::BAIL_OUT(join '', @_);
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return Test::More::like($got, $expected, $desc)
        if ref $expected && ref $expected eq 'Regexp';
    return Test::More::is($got, $expected, $desc) if $NoLongString;
    return Test::LongString::is_string($got, $expected, $desc);
}

# "1.5" or "1.5s" are seconds, "200ms" milliseconds.
sub parse_time ($) {
    my $t = shift;
    return $t unless defined $t;
    return $1 / 1000 if $t =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1 if $t =~ /^\s*([\d.]+)\s*s?\s*$/;
    return $t;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\s+/ /g;
    return $s;
}

# One-line rendering of a log line or pattern for test names.
sub fmt_str ($) {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub canon_version { sprintf '%d.%03d%03d', @_[0 .. 2] }

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if (!defined $out || $? != 0) {
        bail_out("Failed to run \"$NginxBinary -V\": " . ($out // $!));
    }
    return canon_version($1, $2, $3) if $out =~ m{/(\d+)\.(\d+)\.(\d+)};
    bail_out("Cannot parse the output of \"$NginxBinary -V\": $out");
}

sub gen_rand_port {
    my $taken = shift || {};
    for (1 .. 1000) {
        my $port = 1988 + int rand(65535 - 1988);
        next if $taken->{$port};
        my $sock = IO::Socket::INET->new(LocalAddr => $ServerAddr,
            LocalPort => $port, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or next;
        close $sock;
        return $port;
    }
    return undef;
}

# Replace $TEST_NGINX_FOO by the environment variable's value; each
# $TEST_NGINX_RAND_PORT_N gets a free port, the same one within a block.
sub expand_env_in_text ($$) {
    my ($text, $name) = @_;
    return $text unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{ env_value($1, $name) }ge;
    return $text;
}

sub env_value {
    my ($var, $name) = @_;
    if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
        return $RandPorts->{$var} if defined $RandPorts->{$var};
        my %taken = map { $_ => 1 } $ServerPort, values %$RandPorts;
        return $RandPorts->{$var} = gen_rand_port(\%taken)
            // bail_out("$name - Cannot find a free port for $var");
    }
    bail_out("$name - No environment $var defined.") unless defined $ENV{$var};
    return $ENV{$var};
}

sub slurp {
    my $file = shift;
    open my $in, '<', $file or return undef;
    local $/;
    return scalar <$in>;
}

# --------------------------------------------------------- the server root

sub setup_server_root () {
    if (-d $ServRoot) {
        remove_tree($ConfDir, $CacheDir, $HtmlDir, $LogDir,
                    glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
        # refuse to wipe anything we did not create ourselves
        rmdir $ServRoot
            or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        mkdir $dir or bail_out("Failed to mkdir $dir: $!");
    }
    write_file("$HtmlDir/index.html", '<html><head><title>It works!</title>'
        . '</head><body>It works!</body></html>');
}

sub write_file {
    my ($path, $body) = @_;
    open my $out, '>', $path or bail_out("Cannot open $path for writing: $!");
    binmode $out;
    print $out $body;
    close $out;
}

# --- user_files: ">>> name [date]" headers, each followed by the body, or
# an eval'd array of [name, body, date].  Relative names live in html/.
sub write_user_files ($) {
    my $block = shift;
    my $name = $block->name;
    my $files = $block->user_files or return;

    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, '', $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    }
    bail_out("$name - user_files must be a string or an array")
        if ref $files ne 'ARRAY';

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        (my $dir = $path) =~ s{/[^/]*$}{};
        make_path($dir) unless -d $dir;
        write_file($path, expand_env_in_text($body // '', $name));
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - failed to set the date of $path");
        }
    }
}

# ------------------------------------------------------------- nginx.conf

sub write_config_file ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;

    my $http_config = expand_env_in_text($block->http_config // '', $name);
    my $main_config = expand_env_in_text($block->main_config // '', $name);
    my $post_main_config =
        expand_env_in_text($block->post_main_config // '', $name);
    my $server_name = $block->server_name // $ServerName;
    $config //= '';

    my @modules = grep { length } split /\s+/, $LoadModules // '';
    my $load_modules = join '', map { "load_module $_;\n" } @modules;

    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" }
        qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS), @EnvToNginx;

    # temp directories under the server root, unless the test sets them
    my $nginx_V = `$NginxBinary -V 2>&1` // '';
    my @temp_paths;
    for my $kind (qw(client_body proxy fastcgi scgi uwsgi)) {
        my $module = $kind eq 'client_body' ? undef : "http_${kind}_module";
        next if $module && $nginx_V =~ /--without-$module/;
        next if $http_config =~ /\b${kind}_temp_path\b/;
        push @temp_paths, "${kind}_temp_path $ServRoot/${kind}_temp;";
    }
    my $temp_paths = join ' ', @temp_paths;

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $user = $> == 0 ? "user root;\n" : '';

    write_file($ConfFile, <<"_EOC_");
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcess;
error_log $ErrLogFile $LogLevel;
pid       $PidFile;
$env
$load_modules
$main_config

http {
    access_log $AccLogFile;
    $temp_paths

    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config

    server {
        listen          $ServerPort;
        server_name     '$server_name';
        client_max_body_size 30M;

$ConfigPreamble
        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
$user
_EOC_
}

# ------------------------------------------------------- nginx processes

sub read_pid () {
    my $pid = slurp($PidFile) // return undef;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

sub nginx_is_running () {
    my $pid = read_pid();
    return $pid && kill(0, $pid);
}

sub process_gone ($) {
    my $pid = shift;
    waitpid($pid, WNOHANG);    # reaps our own child (valgrind mode)
    return 1 if !kill(0, $pid);
    # an exited daemon stays a zombie until init reaps it, which can take
    # seconds; it no longer holds the port, so count it as gone
    my $stat = slurp("/proc/$pid/stat") // return 0;
    return $stat =~ /^\d+ \(.*\) Z/s;
}

# Stop the nginx named in the pid file: QUIT, wait, then KILL.
sub stop_nginx (;$) {
    # valgrind's leak check makes nginx slow to exit
    my $grace = shift // ($UseValgrind ? 30 : $Timeout);
    my $pid = read_pid();
    if ($pid && kill(0, $pid)) {
        kill SIGQUIT, $pid;
        my $waited = 0;
        while (!process_gone($pid) && $waited < $grace) {
            sleep 0.05;
            $waited += 0.05;
        }
        if (!process_gone($pid)) {
            warn "nginx $pid still running ${grace}s after QUIT; killing it\n";
            # the foreground nginx has its own process group (workers too)
            kill SIGKILL, (getpgrp($pid) == $pid ? -$pid : $pid);
            for (1 .. 100) { last if process_gone($pid); sleep 0.05 }
        }
    }
    unlink $PidFile if -f $PidFile;
    undef $ChildPid;
}

sub nginx_command () {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    # -e (the early error log) exists since nginx 1.19.5
    push @cmd, '-e', $ErrLogFile
        if ($NginxVersion // 0) >= canon_version(1, 19, 5);
    return @cmd;
}

sub valgrind_command () {
    my @opts = $UseValgrind =~ /^\d+$/
        ? qw(--tool=memcheck --leak-check=full --keep-debuginfo=yes
             --show-possibly-lost=no)
        : split ' ', $UseValgrind;
    # ./valgrind.suppress like the real module, plus an explicit file
    for my $file ('valgrind.suppress', $ENV{TEST_NGINX_VALGRIND_SUPPRESSIONS}) {
        push @opts, "--suppressions=$file" if defined $file && -f $file;
    }
    return ('valgrind', '--num-callers=100', '-q', @opts,
            '--gen-suppressions=all', "--log-file=$ValgrindLog");
}

# fork + exec with stdout discarded; returns the child's pid
sub spawn (@) {
    my @cmd = @_;
    my $pid = fork // bail_out("fork() failed: $!");
    if ($pid == 0) {
        setpgrp;
        open STDOUT, '>', '/dev/null';
        exec { $cmd[0] } @cmd;
        warn "cannot run $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}

# Run nginx (daemon mode) once and return its exit status ($?-style).
sub run_nginx_once () {
    my $pid = spawn(nginx_command());
    waitpid $pid, 0;
    return $?;
}

# Stop the previous nginx and lay out a fresh server root for the block.
sub prepare_nginx ($$) {
    my ($block, $config) = @_;
    stop_nginx();
    setup_server_root();
    write_user_files($block);
    write_config_file($block, $config);
    $ErrLogFilePos = 0;
}

# Prepare the server root for the block and start nginx.
sub start_nginx ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;

    prepare_nginx($block, $config);

    if ($UseValgrind) {
        warn "$name\n";
        $ChildPid = spawn(valgrind_command(), nginx_command());
        sleep $TestNginxSleep;    # the client retries until nginx listens
        return;
    }

    my $waited = 0;
    for (my $try = 1; ; $try++) {
        my $status = run_nginx_once();
        last if $status == 0;

        # a config error will not go away: fail fast with its message
        my @emerg = grep { /\[emerg\]/ && !/already in use|could not bind/ }
                    split /^/, slurp($ErrLogFile) // '';
        bail_out("$name - nginx failed to start (status $status): $emerg[0]")
            if @emerg;

        my $delay = $try < 10 ? 0.1 * $try : 1;
        bail_out("$name - Cannot start nginx using \""
                 . join(' ', nginx_command()) . "\" (status $status)")
            if $waited >= 30;
        sleep $delay;
        $waited += $delay;
    }
    sleep $TestNginxSleep;
}

# Valgrind records ("==PID== ...") written by the stopped nginx.
sub read_valgrind_errors () {
    my $log = slurp($ValgrindLog) // return ();
    my @lines = split /^/, $log;
    return () unless grep { /^==\d+== (?!Warning:)\S/ } @lines;
    return @lines;
}

# ------------------------------------------------------------------- logs

# The error log lines written since the previous call (all of them with
# check_accum_error_log).
sub error_log_data () {
    sleep $TestNginxSleep * 3;    # let the log phase finish
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in if !$CheckAccumErrLog;
    close $in;
    return \@lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $AccLogFile or return [];
    my @lines = <$in>;
    return \@lines;
}

sub cleanup_test ($) {
    my $block = shift;
    $_->($block) for @TestCleanupHandlers;
}

END {
    if ($$ == $MainPid) {
        local $?;    # keep the test's exit status
        $_->() for @CleanupHandlers;
        stop_nginx() if $UseValgrind || !$NoClean;
        if ($Randomize && $ServRoot =~ m{/t/servroot_\d+$} && -d $ServRoot) {
            remove_tree($ServRoot);
        }
    }
}

1;
