package Test::Nginx::Lite;

# The run loop of the lite Test::Nginx::Socket: per block, (re)start nginx
# in a fresh server root with the generated nginx.conf, then run the
# requests and checks of Test::Nginx::Lite::Check, repeat_each() times.
# See util/test-nginx/README.md for what is supported.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle);
use POSIX qw(WNOHANG);
use Scalar::Util qw(looks_like_number);
use Test::Base ();
use Test::More ();
use Time::HiRes ();

use Test::Nginx::Lite::Util qw(:all);
use Test::Nginx::Lite::Check qw(run_requests check_error_log
                                check_shutdown_error_log);

our @EXPORT_OK = (@Test::Nginx::Lite::Util::EXPORT_OK,
                  qw(run_tests run_test $NginxVersion $PidFile));
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our $NginxVersion;
our $NginxRawVersion;
our $OpenSSLVersion;
our $PrevConfig;
our $PrevBlock;
our $ConfigVersion;

my $main_pid = $$;
my $first_start = 1;
my $nginx_path;

# the block that started the nginx running under valgrind: its report,
# when nginx exits, covers that block and the ones reusing its nginx
my $valgrind_block;

# the sections this runner implements, and the ones of the real framework
# it does not: a block using one of the latter, or a section nobody knows,
# makes the run die instead of passing without the check

my %supported = map { $_ => 1 } qw(
    ONLY SKIP LAST
    config http_config main_config post_main_config server_name
    error_log_file user_files init log_level must_die
    request request_eval raw_request raw_request_middle_delay
    pipelined_requests more_headers server_addr_for_client
    timeout abort shutdown ignore_response http09 wait
    error_code error_code_like
    response_body response_body_eval response_body_like response_body_unlike
    response_body_filters charset
    response_headers response_headers_like
    raw_response_headers_like raw_response_headers_unlike
    error_log no_error_log grep_error_log grep_error_log_out
    access_log no_access_log shutdown_error_log no_shutdown_error_log
    skip_nginx skip_nginx2 skip_eval skip_openssl todo
    no_check_leak reload_fails
);

my %unsupported = map { $_ => 1 } qw(
    http2 http3 quic_max_idle_timeout curl curl_protocol curl_options
    curl_error tcp_listen tcp_reply tcp_reply_delay tcp_query tcp_query_len
    tcp_shutdown tcp_shutdown_delay tcp_no_close udp_listen udp_reply
    udp_reply_delay udp_query stap stap_out stap_out_like stap_out_unlike
    skip_slave todo_nginx post_setup_server_root
);

$OnBailOut = \&cleanup;

# an interrupted run fails, and still stops its nginx (in END)
for my $sig (qw(INT TERM HUP)) {
    if (!$SIG{$sig} || $SIG{$sig} eq 'DEFAULT') {
        $SIG{$sig} = sub {
            $SIG{$sig} = 'DEFAULT';
            Test::More::BAIL_OUT("interrupted by SIG$sig");
        };
    }
}


sub run_tests () {
    $NginxVersion = get_nginx_version();

    if (!defined $ENV{TEST_NGINX_SERVER_PORT}) {
        $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    }

    my @blocks = Test::Base::blocks();

    # without preprocessors the sections are final: check them all first
    if (!@BlockPreprocessors) {
        for my $block (@blocks) {
            check_sections($block, {});
        }
    }

    if (!$NoShuffle) {
        @blocks = shuffle @blocks;
    }

    for my $block (@blocks) {
        my $read = {};

        if (@BlockPreprocessors) {
            $read = run_preprocessors($block);
            check_sections($block, $read);
        }

        $block->set_value(name => "$0 " . $block->name);

        run_test($block);

        $PrevBlock = $block;
    }

    cleanup();
}


# Run the block preprocessors, noting which of the block's unknown sections
# they read: a section a preprocessor consumes is the test file's own, not
# a typo.

sub run_preprocessors {
    my $block = shift;

    my (%read, %orig);

    for my $section (@{ $block->{_section_order}[0] || [] }) {
        next if $supported{$section} || $unsupported{$section};

        my $accessor = "Test::Base::Block::$section";

        no strict 'refs';
        no warnings 'redefine';

        next if !defined &$accessor;

        my $sub = \&$accessor;
        $orig{$accessor} = $sub;

        *$accessor = sub {
            $read{$section} = 1;
            goto &$sub;
        };
    }

    my $ok = eval {
        for my $handler (@BlockPreprocessors) {
            $handler->($block);
        }

        1;
    };

    my $err = $@;

    for my $accessor (keys %orig) {
        no strict 'refs';
        no warnings 'redefine';

        *$accessor = $orig{$accessor};
    }

    die $err if !$ok;

    return \%read;
}


sub check_sections {
    my ($block, $read) = @_;

    my $name = $block->name;

    for my $section (@{ $block->{_section_order}[0] || [] }) {
        next if $supported{$section} || $read->{$section};

        if ($unsupported{$section}) {
            die "$0: $name: section \"--- $section\" is not supported by the "
                . "lite Test::Nginx::Socket in util/test-nginx (install "
                . "Test::Nginx from CPAN to use it)\n";
        }

        die "$0: $name: unknown section \"--- $section\"\n";
    }

    for my $section (sort keys %unsupported) {
        if (defined $block->$section) {
            die "$0: $name: section \"--- $section\" (set by a block "
                . "preprocessor) is not supported by the lite "
                . "Test::Nginx::Socket in util/test-nginx\n";
        }
    }
}


sub run_test ($) {
    my $block = shift;

    my $name = $block->name;
    my $rand_ports = {};
    my $config = expand_env_in_text($block->config, $name, $rand_ports);
    my $must_die = $block->must_die;

    my $saved = save_settings(\$LogLevel, \$UseValgrind, \$UseHup,
                              \$DaemonEnabled);

    if ($block->log_level) {
        $LogLevel = $block->log_level;
    }

    # an nginx that must die is started the plain way
    if (defined $must_die) {
        undef $UseValgrind;
        undef $UseHup;
        $DaemonEnabled = 'on';
    }

    my ($should_skip, $tests_to_skip, $skip_reason) = skip_spec($block);
    my ($should_todo, $todo_reason) = todo_spec($block, \$tests_to_skip);

    my $should_restart;

    if (defined $config) {
        $should_restart = !defined $PrevConfig || $config ne $PrevConfig
                          || $ForceRestartOnTest;

    } else {
        if (!defined $PrevConfig) {
            bail_out("$name - No '--- config' section specified and could "
                     . "not get previous one.");
        }

        for my $section (qw(http_config main_config post_main_config
                            user_files))
        {
            if (defined $block->$section) {
                warn "WARNING: $name - --- $section is ignored: without "
                     . "--- config the running nginx is reused\n";
            }
        }
    }

    if (!$should_skip && $should_restart) {
        $PrevConfig = $config;

        if ($UseHup) {
            $ConfigVersion = join '',
                             map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 10;
        }

        my $pid = running_nginx_pid();

        if ($UseHup && defined $pid && !$first_start) {
            reload_nginx($block, $config, $rand_ports, $pid);

        } else {
            if (defined $pid) {
                stop_nginx($pid, $name);
            }

            check_prev_block_shutdown_error_log();

            setup_server_root();
            write_user_files($block, $rand_ports);
            write_config_file($block, $config, $rand_ports);

            if (defined $must_die) {
                run_must_die($block, $must_die, $rand_ports);
                return;
            }

            start_nginx($block);
            $first_start = 0;
        }
    }

    if ($block->init) {
        run_init($block);
    }

    $ErrLogFilePos = 0;

    for my $i (1 .. $RepeatEach) {
        if ($i > 1) {
            write_user_files($block, $rand_ports);
        }

        if ($should_skip && defined $tests_to_skip) {
            SKIP: {
                Test::More::skip("$name - $skip_reason", $tests_to_skip);
            }

        } elsif ($should_todo) {
            TODO: {
                Test::More::todo_skip("$name - $todo_reason", $tests_to_skip);
            }

        } else {
            run_requests($block, $i - 1, $rand_ports);
        }
    }

    if (my $total_errlog = $ENV{TEST_NGINX_ERROR_LOG}) {
        if (-s $ErrLogFile) {
            open my $out, '>>', $total_errlog
                or bail_out("Failed to append to $total_errlog: $!\n");
            open my $in, '<', $ErrLogFile
                or bail_out("Failed to read $ErrLogFile: $!\n");

            print $out "\n=== $name\n", <$in>;

            close $in;
            close $out;
        }
    }

    # under valgrind the real framework stops nginx (QUIT) at the end of
    # every block, so a block without --- config finds none
    if ($UseValgrind) {
        my $pid = running_nginx_pid();

        if (defined $pid) {
            my $child = defined $ChildPid && $pid == $ChildPid;

            stop_nginx($pid, $name);

            if ($child) {
                $StoppedChildPid = $pid;
            }
        }
    }
}


# --- init: Perl code run once before the block's requests (after nginx
# started), in package main; it sees $block and $name

sub run_init {
    my $block = shift;

    my $name = $block->name;
    my $code = $block->init;

    my $ok = eval "package main;\n#line 1 \"--- init\"\n$code\n;1";

    if (!$ok) {
        bail_out("$name - init failed: $@");
    }
}


# --- skip_nginx / skip_nginx2 / skip_openssl / skip_eval: "N: condition"

sub skip_spec {
    my $block = shift;

    my $name = $block->name;
    my ($skip, $count, $reason);

    if (defined(my $spec = $block->skip_eval)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            ($count, $reason) = ($1, 'skip_eval');

            my $code = $2;

            $skip = eval "package main;\n$code";
            if ($@) {
                bail_out("$name - skip_eval - failed to eval the Perl code "
                         . "\"$code\": $@");
            }
        }
    }

    if (defined(my $spec = $block->skip_nginx)) {
        if ($spec !~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                      (?:\s*:\s*(.*))?\s*$/x)
        {
            bail_out("$name - Invalid --- skip_nginx spec: $spec");
        }

        $count = $1;
        $reason = $6 || "nginx version $2 $3.$4.$5";

        if (version_cmp($NginxVersion, $2, canon_version($3, $4, $5))) {
            $skip = 1;
        }

    } elsif (defined(my $spec2 = $block->skip_nginx2)) {
        if ($spec2 !~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                       \s*(or|and)\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                       (?:\s*:\s*(.*))?\s*$/x)
        {
            bail_out("$name - Invalid --- skip_nginx2 spec: $spec2");
        }

        $count = $1;
        $reason = $11;

        my $or = $6 eq 'or';
        my $lhs = version_cmp($NginxVersion, $2, canon_version($3, $4, $5));
        my $rhs = version_cmp($NginxVersion, $7, canon_version($8, $9, $10));

        if ($or ? $lhs || $rhs : $lhs && $rhs) {
            $skip = 1;
        }
    }

    if (defined(my $spec = $block->skip_openssl)) {
        if ($spec !~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)([a-z])?
                      (?:\s*:\s*(.*))?\s*$/x)
        {
            bail_out("$name - Invalid --- skip_openssl spec: $spec");
        }

        $count = $1;
        $reason = $7 || "OpenSSL version $2 $3.$4.$5" . ($6 // '');

        my $ver = canon_version($3, $4, $5);
        if (defined $6) {
            $ver .= sprintf '%03d', ord($6) - ord('a');
        }

        if (!defined $OpenSSLVersion
            || version_cmp($OpenSSLVersion, $2, $ver))
        {
            $skip = 1;
        }
    }

    return ($skip, $count, $reason || 'various reasons');
}


sub todo_spec {
    my ($block, $count) = @_;

    my $spec = $block->todo;

    return (undef, undef) if !defined $spec;

    if ($spec !~ /^\s*(\d+)\s*:\s*(.*)/s) {
        bail_out($block->name . " - Invalid --- todo spec: $spec");
    }

    $$count = $1;

    return (1, $2 || 'various reasons');
}


sub canon_version {
    return sprintf '%d.%03d%03d', @_;
}


sub version_cmp {
    my ($have, $op, $want) = @_;

    if (!defined $have) {
        return $op =~ /^</;
    }

    return $op eq '<'  ? $have < $want
         : $op eq '<=' ? $have <= $want
         : $op eq '>'  ? $have > $want
         :               $have >= $want;
}


# the nginx binary: TEST_NGINX_BINARY or "nginx" in PATH (/usr/sbin on
# Debian, which is not in the PATH of a normal user)

sub find_nginx {
    if ($NginxBinary =~ m{/}) {
        return -f $NginxBinary && -x _ ? $NginxBinary : undef;
    }

    for my $dir (File::Spec->path, '/usr/sbin', '/usr/local/sbin') {
        next if !defined $dir || $dir eq '';

        my $path = File::Spec->catfile($dir, $NginxBinary);

        return $path if -f $path && -x _;
    }

    return undef;
}


sub get_nginx_version {
    $nginx_path = find_nginx();

    if (!defined $nginx_path) {
        bail_out("Cannot find the nginx executable \"$NginxBinary\" (set "
                 . "TEST_NGINX_BINARY or PATH)");
    }

    my $out = `'$nginx_path' -V 2>&1`;

    if (!defined $out || $? != 0) {
        bail_out("Failed to get the version of the Nginx in PATH: "
                 . ($out // ''));
    }

    if ($out =~ m{built with OpenSSL (\d+)\.(\d+)\.(\d+)([a-z])?}s) {
        $OpenSSLVersion = canon_version($1, $2, $3);

        if (defined $4) {
            $OpenSSLVersion .= sprintf '%03d', ord($4) - ord('a');
        }
    }

    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        return canon_version($1, $2, $3);
    }

    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}


sub nginx_cmd {
    my @cmd = ($nginx_path);

    # -e: errors before the configuration's error_log is opened (a bad
    # directive) go to the server root too, not to the compiled-in path
    if ($NginxVersion >= 1.019005) {
        push @cmd, '-e', $ErrLogFile;
    }

    push @cmd, '-p', "$ServRoot/", '-c', $ConfFile;

    return @cmd;
}


sub valgrind_cmd {
    my @cmd = ('valgrind', '-q', '--num-callers=100');

    if ($UseValgrind =~ /^\d+$/) {
        push @cmd, qw(--tool=memcheck --leak-check=full --keep-debuginfo=yes
                      --show-possibly-lost=no);

    } else {
        push @cmd, split ' ', $UseValgrind;
    }

    push @cmd, '--gen-suppressions=all';

    # the real framework reads ./valgrind.suppress; t/ is accepted too
    for my $file ('valgrind.suppress', 't/valgrind.suppress') {
        if (-f $file) {
            push @cmd, '--suppressions=' . File::Spec->rel2abs($file);
        }
    }

    push @cmd, "--log-file=$LogDir/valgrind.log";

    return @cmd;
}


# fork and exec a command with stdout to /dev/null and stderr to a file;
# returns the child's pid

sub spawn {
    my ($stderr, @cmd) = @_;

    my $pid = fork;

    if (!defined $pid) {
        bail_out("fork() failed: $!");
    }

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $stderr;

        {
            no warnings 'exec';
            exec { $cmd[0] } @cmd;
        }

        POSIX::_exit(127);
    }

    return $pid;
}


sub read_file {
    my $path = shift;

    open my $in, '<', $path or return '';
    local $/;
    my $data = <$in>;
    close $in;

    return defined $data ? $data : '';
}


sub start_nginx {
    my $block = shift;

    my $name = $block->name;
    my $stderr = "$LogDir/stderr.log";
    my @cmd = nginx_cmd();

    if ($UseValgrind) {
        @cmd = (valgrind_cmd(), @cmd);

        warn "$name\n";

        $ChildPid = spawn($stderr, @cmd);
        undef $StoppedChildPid;
        $valgrind_block = $name;

        # as in the real framework, no wait for nginx to listen: --- init
        # runs at once, long before nginx under valgrind has read its
        # configuration, and the client retries connecting (and fails at
        # once if nginx has died)
        Time::HiRes::sleep($TestNginxSleep);

        return;
    }

    my $waited = 0;
    my $tries = 0;

    while (1) {
        my $pid = spawn($stderr, @cmd);

        waitpid $pid, 0;

        my $status = $?;

        last if $status == 0;

        my $err = read_file($stderr);

        # only a busy port is worth waiting for; a bad configuration stays
        # bad (the real framework retries anyway, for 30 s)
        if ($waited >= 30 || $err !~ /Address already in use/) {
            bail_out("$name - Cannot start nginx using command \"@cmd\" "
                     . "(status code $status).\n$err");
        }

        $tries++;

        my $delay = 0.1 * $tries;
        $delay = 1 if $delay > 1;

        Time::HiRes::sleep($delay);
        $waited += $delay;
    }

    Time::HiRes::sleep($TestNginxSleep);
}


# --- must_die: nginx must fail to start; the error log checks see
# error.log and nginx's stderr

sub run_must_die {
    my ($block, $must_die, $rand_ports) = @_;

    my $name = $block->name;
    my $stderr = "$LogDir/stderr.log";
    my @cmd = nginx_cmd();

    $ErrLogFilePos = 0;

    for my $i (0 .. $RepeatEach - 1) {
        my $pid = spawn($stderr, @cmd);

        waitpid $pid, 0;

        my $status = $?;
        my $exit_code = $status >> 8;

        if ($status & 128) {
            Test::More::fail("$name - nginx core dumped");

        } elsif ($exit_code == 127 && read_file($stderr) eq '') {
            Test::More::fail("$name - failed to execute the nginx command "
                             . "line");

        } elsif (looks_like_number($must_die)) {
            Test::More::is($must_die, $exit_code,
                           "$name - die with the expected exit code");

        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        {
            my $saved = save_settings(\$ExtraErrLogFile);

            $ExtraErrLogFile = $stderr;
            check_error_log($block, $i, $rand_ports);
        }

        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing "
                 . "it (req $i)\n";

            for (1 .. 15) {
                last if -f $PidFile;
                Time::HiRes::sleep($TestNginxSleep);
            }

            my $running = running_nginx_pid();
            if (defined $running) {
                stop_nginx($running, $name);
            }
        }
    }
}


# the pid of the nginx started for this suite, if it still runs

sub running_nginx_pid {
    if (defined $ChildPid && process_alive($ChildPid)) {
        return $ChildPid;
    }

    return undef if !-f $PidFile;

    my $pid = read_file($PidFile);
    $pid =~ s/\s+//g;

    if ($pid =~ /^\d+$/ && process_alive($pid)) {
        return $pid;
    }

    unlink $PidFile;

    return undef;
}


sub process_alive {
    my $pid = shift;

    if (defined $ChildPid && $pid == $ChildPid) {
        my $rc = waitpid $pid, WNOHANG;

        if ($rc != 0) {
            undef $ChildPid;
            return 0;
        }

        return 1;
    }

    return 0 if !kill 0, $pid;

    # a daemon's zombie waits for init to reap it, which can take a while
    # (in a container, say)
    my $stat = read_file("/proc/$pid/stat");

    return $stat !~ /^\d+ \(.*\) Z/s;
}


# stop nginx: QUIT (graceful), then TERM, then KILL; then wait for its
# port to be free

sub stop_nginx {
    my ($pid, $name) = @_;

    my $child = defined $ChildPid && $pid == $ChildPid;

    kill 'QUIT', $pid;

    # under valgrind the exit includes the leak check
    my $left = $child ? 60 : timeout();

    while ($left > 0 && process_alive($pid)) {
        Time::HiRes::sleep(0.05);
        $left -= 0.05;
    }

    if (process_alive($pid)) {
        warn "$name - timeout when waiting for the process $pid to exit\n";

        my $step = $TestNginxSleep;

        for (1 .. 20) {
            last if !process_alive($pid);

            kill 'TERM', $pid;

            $step *= 1.2;
            $step = 0.5 if $step > 0.5;
            Time::HiRes::sleep($step);
        }

        if (process_alive($pid)) {
            warn "$name - WARNING: killing the child process $pid with "
                 . "force...\n";

            kill 'KILL', $pid;

            if ($child) {
                waitpid $pid, 0;
                undef $ChildPid;
            }
        }
    }

    if ($child) {
        report_valgrind($valgrind_block);
    }

    if (-f $PidFile && !process_alive($pid)) {
        unlink $PidFile;
    }

    wait_port_free();
}


# valgrind's report goes to the test's stderr as a warning (it fails no
# test, as in the real framework) and to the end of error.log

sub report_valgrind {
    my $name = shift;

    my $report = read_file("$LogDir/valgrind.log");

    return if $report !~ /\S/;

    warn "WARNING: $name - valgrind report:\n$report";

    if (open my $out, '>>', $ErrLogFile) {
        print $out "valgrind report:\n$report";
        close $out;
    }
}


sub wait_port_free {
    for (1 .. 100) {
        my $sock = IO::Socket::INET->new(
            LocalPort => $ServerPort,
            Proto     => 'tcp',
            ReuseAddr => 1,
            Listen    => 1,
        );

        if (defined $sock) {
            close $sock;
            return;
        }

        Time::HiRes::sleep(0.05);
    }
}


# TEST_NGINX_USE_HUP: give the running master the new configuration with
# USR1 (reopen the logs, whose files are gone) and HUP, then wait until
# the new workers answer with the new configuration's version

sub reload_nginx {
    my ($block, $config, $rand_ports, $pid) = @_;

    my $name = $block->name;

    setup_server_root();
    write_user_files($block, $rand_ports);
    write_config_file($block, $config, $rand_ports);

    kill 'USR1', $pid;
    Time::HiRes::sleep($TestNginxSleep);
    kill 'HUP', $pid;
    Time::HiRes::sleep($TestNginxSleep * 3);

    if (defined $block->reload_fails) {
        Time::HiRes::sleep(0.3);

    } else {
        wait_config_version($name);
    }

    # the old workers may still be shutting down: not checkable here
    if (defined $PrevBlock && defined $PrevBlock->shutdown_error_log) {
        my $n = 0;

        for my $section (qw(shutdown_error_log no_shutdown_error_log)) {
            my $pats = $PrevBlock->$section;
            next if !defined $pats;
            $n += ref $pats eq 'ARRAY' ? @$pats
                : ref $pats ? 1
                : scalar grep { $_ ne '' } split /\n+/, $pats;
        }

        SKIP: {
            Test::More::skip($PrevBlock->name . " - shutdown_error_log - "
                             . "tests skipped due to the HUP reload mode",
                             $n);
        }
    }
}


sub wait_config_version {
    my $name = shift;

    my $ok = 0;

    for my $try (1 .. 200) {
        my $ver = fetch_config_version();

        if (defined $ver && $ver eq $ConfigVersion) {
            return if ++$ok >= 20;
            next;
        }

        $ok = 0;

        my $wait = ($TestNginxSleep + $TestNginxSleep * $try) * $try / 2;
        $wait = 1 if $wait > 1;

        if ($wait > 0.5) {
            warn "$name - waiting $wait sec for nginx to reload the "
                 . "configuration\n";
        }

        Time::HiRes::sleep($wait);
    }

    Test::More::fail("$name - failed to reload configuration after 200 "
                     . "failed test requests");
}


sub fetch_config_version {
    my $sock = IO::Socket::INET->new(
        PeerAddr => $ServerAddr,
        PeerPort => $ServerPort,
        Proto    => 'tcp',
        Timeout  => 2,
    ) or return undef;

    syswrite $sock, "GET /ver HTTP/1.0\r\nHost: Test-Nginx\r\n\r\n";

    my $sel = IO::Select->new($sock);
    my $resp = '';

    while ($sel->can_read(2)) {
        my $n = sysread $sock, my $buf, 4096;
        last if !$n;
        $resp .= $buf;
    }

    close $sock;

    return $resp =~ /\r\n\r\n(.*)\z/s ? $1 : undef;
}


# a fresh server root: conf, html (with index.html), logs; the *_temp and
# *_cache directories nginx made are removed.  Under HUP the directories
# stay and the files go, but nginx.pid (and, after the first start,
# sockets and certificates).

sub setup_server_root {
    if (-d $ServRoot) {
        remove_tree($ConfDir, glob("$ServRoot/*_cache"),
                    glob("$ServRoot/*_temp"));

        if ($UseHup) {
            clean_tree_for_hup($ServRoot);

        } else {
            remove_tree($HtmlDir, $LogDir);

            rmdir $ServRoot
                or bail_out("Can't remove $ServRoot (not empty?): $!");
        }
    }

    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        if (!-d $dir) {
            make_path($dir) or bail_out("Failed to do mkdir $dir: $!\n");
        }
    }

    my $index = "$HtmlDir/index.html";

    open my $out, '>', $index
        or bail_out("Can't open $index for writing: $!\n");

    print $out '<html><head><title>It works!</title></head><body>It works!'
               . '</body></html>';

    close $out;
}


sub clean_tree_for_hup {
    my $dir = shift;

    opendir my $dh, $dir or return;
    my @entries = grep { $_ ne '.' && $_ ne '..' } readdir $dh;
    closedir $dh;

    for my $entry (@entries) {
        my $path = "$dir/$entry";

        if (-d $path && !-l $path) {
            clean_tree_for_hup($path);
            next;
        }

        if ($path =~ /\bnginx\.pid$/
            || (!$first_start && $path =~ /\.(?:sock|crt|key)$/))
        {
            next;
        }

        unlink $path or warn "Failed to remove $path: $!\n";
    }
}


# --- user_files: ">>> name [touch date]" then the content; or an eval
# array of [name, content, date]

sub write_user_files {
    my ($block, $rand_ports) = @_;

    my $name = $block->name;
    my $files = $block->user_files;

    return if !$files;

    if (!ref $files) {
        my @list;

        for my $line (split /^/, $files) {
            if ($line =~ />>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, undef, $2];

            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }

        $files = \@list;

    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: ", ref $files,
                 ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;

        $body = '' if !defined $body;

        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";

        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - Cannot create directory $1");
        }

        $body = expand_env_in_text($body, $name, $rand_ports);

        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;

        if ($date) {
            local $ENV{TZ} = 'GMT';

            system('touch', '-t', $date, $path) == 0
                or bail_out("Failed to run: touch -t '$date' $path\n");
        }
    }
}


sub write_config_file {
    my ($block, $config, $rand_ports) = @_;

    my $name = $block->name;

    if ($UseHup) {
        # a reload with the master process off is not reliable
        master_on();
    }

    my $http_config = expand_env_in_text($block->http_config, $name,
                                         $rand_ports);
    $http_config = '' if !defined $http_config;
    $config = '' if !defined $config;

    my $extra_http_config = '';

    if (defined $PostponeOutput && $http_config !~ /\bpostpone_output\b/) {
        if ($PostponeOutput !~ /^\d+$/) {
            bail_out("Bad TEST_NGINX_POSTPONE_OUTPUT value: "
                     . "$PostponeOutput\n");
        }

        $extra_http_config .= "    postpone_output $PostponeOutput;\n";
    }

    # temporary files under the server root (Debian's compiled-in paths
    # under /var/lib/nginx need root), unless the test sets them
    for my $temp (qw(client_body proxy fastcgi uwsgi scgi)) {
        if ($http_config !~ /\b${temp}_temp_path\b/) {
            $extra_http_config .= "    ${temp}_temp_path $ServRoot/"
                                  . "${temp}_temp;\n";
        }
    }

    my $main_config = $block->main_config;
    $main_config = '' if !defined $main_config;

    if ($LoadModules) {
        $main_config .= "\n" . join "\n",
                        map { "load_module $_;" } split ' ', $LoadModules;
    }

    $main_config = expand_env_in_text($main_config, $name, $rand_ports);

    my $post_main_config = expand_env_in_text($block->post_main_config,
                                              $name, $rand_ports);
    $post_main_config = '' if !defined $post_main_config;

    my $err_log_file = expand_env_in_text($block->error_log_file, $name,
                                          $rand_ports);
    $err_log_file = $ErrLogFile if !$err_log_file;

    my $server_name = $block->server_name;
    $server_name = $ServerName if !defined $server_name;
    $server_name =~ s/\\/\\\\/g;
    $server_name =~ s/'/\\'/g;

    my $listen_opts = $ReusePort ? ' reuseport' : '';

    my $env = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" } @EnvToNginx;

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $hup_server = !$UseHup ? '' : <<"_EOC_";
    server {
        listen          $ServerPort$listen_opts;
        server_name     'Test-Nginx';

        location = /ver {
            return 200 '$ConfigVersion';
        }
    }
_EOC_

    my $events_use = $EventType ? "    use $EventType;\n" : '';

    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0             ? "user root;\n"
             :                       '';

    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!\n");

    print $out <<"_EOC_";
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log_file $LogLevel;
pid       $PidFile;
env MOCKEAGAIN_VERBOSE;
env MOCKEAGAIN;
env MOCKEAGAIN_WRITE_TIMEOUT_PATTERN;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env DYLD_INSERT_LIBRARIES;
env DYLD_FORCE_FLAT_NAMESPACE;
$env
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$extra_http_config
$http_config

    server {
        listen          $ServerPort$listen_opts;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }

$hup_server}

$post_main_config

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
$events_use}

env ASAN_OPTIONS;
env MOCKNOEAGAIN_VERBOSE;
env MOCKNOEAGAIN;
$user
_EOC_

    close $out;
}


sub check_prev_block_shutdown_error_log {
    if (defined $PrevBlock && defined $PrevBlock->shutdown_error_log) {
        check_shutdown_error_log($PrevBlock);
    }
}


# stop what runs (the real framework calls this at the end of run_tests,
# on bail out and at exit): the cleanup handlers, a foreground nginx

sub cleanup {
    for my $handler (@CleanupHandlers) {
        $handler->();
    }

    if (defined $ChildPid) {
        stop_nginx($ChildPid, 'cleanup');
    }
}


END {
    if ($$ == $main_pid) {
        local $?;

        cleanup();

        if ($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
            my $pid = running_nginx_pid();

            if (defined $pid) {
                stop_nginx($pid, 'END');
            }
        }

        check_prev_block_shutdown_error_log();

        if ($Randomize && $ServRoot =~ m{/t/servroot_\d+$}) {
            remove_tree($ServRoot);
        }
    }
}


1;
