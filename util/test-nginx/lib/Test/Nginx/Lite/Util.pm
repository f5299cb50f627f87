package Test::Nginx::Lite::Util;

# Settings and small helpers shared by the lite Test::Nginx::Socket runner.
#
# The globals mirror the knobs of openresty's Test::Nginx (the environment
# variables and the configuration functions a test file calls before
# run_tests()); Test::Nginx::Socket re-exports the functions.

use strict;
use warnings;

use Exporter 'import';
use Carp qw(croak);
use File::Spec ();
use IO::Socket::INET ();
use Test::LongString ();
use Test::More ();
use Time::HiRes ();

# modes of the real framework this runner does not implement: refuse them
# loudly instead of running the suite in a different mode than asked for

my %unsupported_env = (
    TEST_NGINX_CHECK_LEAK                => 'the "check leak" mode',
    TEST_NGINX_BENCHMARK                 => 'the benchmark mode',
    TEST_NGINX_USE_STAP                  => 'systemtap tracing',
    TEST_NGINX_USE_HTTP2                 => 'HTTP/2 requests (via curl)',
    TEST_NGINX_USE_HTTP3                 => 'HTTP/3 requests (via curl)',
    TEST_NGINX_USE_RR                    => 'rr recording',
    TEST_NGINX_NO_NGINX_MANAGER          => 'running without managing nginx',
    TEST_NGINX_IGNORE_MISSING_DIRECTIVES => 'skipping unknown directives',
);

for my $var (sort keys %unsupported_env) {
    if ($ENV{$var}) {
        die "$var is set, but $unsupported_env{$var} is not supported by "
            . "the lite Test::Nginx::Socket in util/test-nginx; install "
            . "Test::Nginx from CPAN to use it\n";
    }
}

our $Verbose              = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Workers              = 1;
our $WorkerConnections    = 64;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT}
                            || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $NoRootLocation       = 0;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $RepeatEach           = 1;
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $NoLongString;
our $ConfigPreamble       = '';
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind          = $ENV{TEST_NGINX_USE_VALGRIND};
our $UseHup               = $ENV{TEST_NGINX_USE_HUP};
our $Randomize            = $ENV{TEST_NGINX_RANDOMIZE};
our $EventType            = $ENV{TEST_NGINX_EVENT_TYPE};
our $PostponeOutput       = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $ReusePort            = $ENV{TEST_NGINX_REUSE_PORT};
our $WorkerUser           = $ENV{TEST_NGINX_WORKER_USER};
our $ForceRestartOnTest   = defined $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST}
                            ? $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} : 1;

our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;
our @ResponseBodyChecks;

# the position in error.log up to which the log has been checked, and the
# captured stderr of an nginx that had to die (must_die)
our $ErrLogFilePos = 0;
our $ExtraErrLogFile;

# the pid of an nginx running in the foreground as our child (valgrind)
our $ChildPid;

# under valgrind: the pid of the nginx stopped at the end of the previous
# block, while no block has started another (a block without --- config
# then finds no nginx, as in the real framework)
our $StoppedChildPid;

# what bail_out() runs before bailing out: stopping nginx
our $OnBailOut;

if ($UseValgrind && $UseHup) {
    die "TEST_NGINX_USE_VALGRIND and TEST_NGINX_USE_HUP together are not "
        . "supported by the lite Test::Nginx::Socket in util/test-nginx\n";
}

if (defined $WorkerUser && $WorkerUser !~ /^\w+(?:\s+\w+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

if ($UseValgrind) {
    # nginx stays in the foreground as a child of the test process
    $DaemonEnabled = 'off';
}

our ($ServRoot, $LogDir, $ErrLogFile, $AccLogFile, $HtmlDir, $ConfDir,
     $ConfFile, $PidFile);

our @EXPORT_OK = qw(
    $Verbose $NginxBinary $Workers $WorkerConnections $LogLevel
    $MasterProcessEnabled $DaemonEnabled $ServerAddr $ServerName
    $ServerPort $ServerPortForClient $NoRootLocation $TestNginxSleep
    $Timeout $RepeatEach $NoShuffle $CheckAccumErrLog $NoLongString
    $ConfigPreamble $LoadModules $UseValgrind $UseHup $Randomize
    $EventType $PostponeOutput $ReusePort $WorkerUser $ForceRestartOnTest
    @EnvToNginx @BlockPreprocessors @CleanupHandlers @ResponseBodyChecks
    $ErrLogFilePos $ExtraErrLogFile $ChildPid $StoppedChildPid $OnBailOut
    $ServRoot $LogDir $ErrLogFile $AccLogFile $HtmlDir $ConfDir $ConfFile
    $PidFile

    repeat_each workers worker_connections log_level master_on master_off
    master_process_enabled no_shuffle no_root_location check_accum_error_log
    no_long_string env_to_nginx add_block_preprocessor add_cleanup_handler
    add_response_body_check server_port server_port_for_client server_addr
    server_name server_root html_dir timeout config_preamble use_hup
    no_nginx_manager sleep_time verbose

    bail_out parse_time is_str fmt_str trim show_all_chars
    expand_env_in_text gen_rand_port error_log_data access_log_data
    get_indexed_value save_settings
);

our %EXPORT_TAGS = (all => \@EXPORT_OK);


# functions a test file calls before run_tests(); the prototypes are those
# of the real framework, so that the calls parse the same way

sub repeat_each (@) {
    if (@_) {
        $RepeatEach = shift;
    }

    return $RepeatEach;
}


sub workers (@) {
    if (@_) {
        $Workers = shift;
        return;
    }

    return $Workers;
}


sub worker_connections (@) {
    if (@_) {
        $WorkerConnections = shift;
        return;
    }

    return $WorkerConnections;
}


sub log_level (@) {
    if (@_) {
        $LogLevel = shift;
        return;
    }

    return $LogLevel;
}


sub master_on () {
    $MasterProcessEnabled = 'on';
}


sub master_off () {
    $MasterProcessEnabled = 'off';
}


sub master_process_enabled (@) {
    if (@_) {
        $MasterProcessEnabled = shift() ? 'on' : 'off';
        return;
    }

    return $MasterProcessEnabled;
}


sub no_shuffle () {
    $NoShuffle = 1;
}


sub no_root_location () {
    $NoRootLocation = 1;
}


sub check_accum_error_log () {
    $CheckAccumErrLog = 1;
}


sub no_long_string () {
    $NoLongString = 1;
}


sub env_to_nginx (@) {
    if (!@_) {
        croak "env_to_nginx: no arguments specified";
    }

    for my $v (@_) {
        if ($v !~ /^[A-Za-z_]/ || $v =~ /\n/) {
            croak "env_to_nginx: bad argument value: $v\n";
        }

        push @EnvToNginx, $v;
    }
}


sub add_block_preprocessor (&) {
    unshift @BlockPreprocessors, shift;
}


sub add_cleanup_handler ($) {
    unshift @CleanupHandlers, shift;
}


sub add_response_body_check ($) {
    push @ResponseBodyChecks, shift;
}


sub server_port (@) {
    if (@_) {
        $ServerPort = shift;
        return;
    }

    return $ServerPort;
}


sub server_port_for_client (@) {
    if (@_) {
        $ServerPortForClient = shift;
        return;
    }

    return $ServerPortForClient;
}


sub server_addr (@) {
    if (@_) {
        $ServerAddr = shift;
        return;
    }

    return $ServerAddr;
}


sub server_name (@) {
    if (@_) {
        $ServerName = shift;
        return;
    }

    return $ServerName;
}


sub server_root () {
    return $ServRoot;
}


sub html_dir () {
    return $HtmlDir;
}


sub timeout (@) {
    if (@_) {
        $Timeout = shift;
        return;
    }

    return $Timeout;
}


sub config_preamble ($) {
    $ConfigPreamble = shift;
}


sub use_hup () {
    if ($UseValgrind) {
        die "use_hup() under TEST_NGINX_USE_VALGRIND is not supported by the "
            . "lite Test::Nginx::Socket in util/test-nginx\n";
    }

    $UseHup = 1;
}


sub no_nginx_manager () {
    die "no_nginx_manager() is not supported by the lite "
        . "Test::Nginx::Socket in util/test-nginx\n";
}


sub sleep_time () {
    return $TestNginxSleep;
}


sub verbose () {
    return $Verbose;
}


# helpers

sub bail_out (@) {
    if ($OnBailOut) {
        $OnBailOut->();
    }

    Test::More::BAIL_OUT(join '', @_);
}


sub parse_time ($) {
    my $tm = shift;

    if (defined $tm) {
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
            $tm = $tm / 1000;

        } else {
            $tm =~ s/([^_a-zA-Z])s$/$1/;
        }
    }

    return $tm;
}


sub is_str (@) {
    my ($got, $expected, $desc) = @_;

    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }

    if ($NoLongString) {
        return Test::More::is($got, $expected, $desc);
    }

    return Test::LongString::is_string($got, $expected, $desc);
}


sub fmt_str ($) {
    my $str = shift;

    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;

    return $str;
}


# a one-line summary of a response body for test names

sub trim ($) {
    my $s = shift;

    return undef if !defined $s;

    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;

    return $s;
}


sub show_all_chars ($) {
    my $s = shift;

    $s =~ s/\n/\\n/gs;
    $s =~ s/\r/\\r/gs;
    $s =~ s/\t/\\t/gs;

    return $s;
}


# a free TCP port on the loopback interface, not in %$used

sub gen_rand_port ($) {
    my $used = shift;

    for (1 .. 1000) {
        my $port = int(rand 63550) + 1985;

        next if $used->{$port};

        my $sock = IO::Socket::INET->new(
            LocalAddr => $ServerAddr,
            LocalPort => $port,
            Proto     => 'tcp',
            ReuseAddr => 1,
        );

        if (defined $sock) {
            close $sock;
            return $port;
        }
    }

    return undef;
}


# replace $TEST_NGINX_* with the environment; $TEST_NGINX_RAND_PORT_<n>
# becomes a free port, the same one everywhere in the block

sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;

    return undef if !defined $text;

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        expand_env_var($1, $name, $rand_ports)
    }ge;

    return $text;
}


sub expand_env_var {
    my ($var, $name, $rand_ports) = @_;

    if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
        if (!defined $rand_ports->{$var}) {
            my %used = ($ServerPort => 1,
                        map { $_ => 1 } values %$rand_ports);

            my $port = gen_rand_port(\%used);

            if (!defined $port) {
                bail_out("$name - Cannot find an available listening port "
                         . "number for $var.\n");
            }

            $rand_ports->{$var} = $port;
        }

        return $rand_ports->{$var};
    }

    if (!defined $ENV{$var}) {
        bail_out("$name - No environment $var defined.\n");
    }

    return $ENV{$var};
}


# the error.log lines written since the previous check (or the whole file
# under check_accum_error_log()); after a delay, for what nginx logs once
# the connection is closed

sub error_log_data () {
    Time::HiRes::sleep($TestNginxSleep * 3);

    my @lines;

    if (open my $in, '<', $ErrLogFile) {
        if (!$CheckAccumErrLog && $ErrLogFilePos > 0) {
            seek $in, $ErrLogFilePos, 0;
        }

        @lines = <$in>;

        if (!$CheckAccumErrLog) {
            $ErrLogFilePos = tell $in;
        }

        close $in;

    } elsif (!defined $ExtraErrLogFile) {
        return undef;
    }

    if (defined $ExtraErrLogFile && open my $in, '<', $ExtraErrLogFile) {
        push @lines, <$in>;
        close $in;
    }

    return \@lines;
}


sub access_log_data () {
    Time::HiRes::sleep($TestNginxSleep * 3);

    open my $in, '<', $AccLogFile
        or die "open $AccLogFile failed: $!";

    my @lines = <$in>;

    close $in;

    return \@lines;
}


# an expectation of a multi-request block must be an array, one item per
# request

sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;

    if ($need_array) {
        if (ref $value && ref $value eq 'ARRAY') {
            return $value->[$req_idx];
        }

        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }

    if (ref $value && ref $value eq 'ARRAY') {
        return $value->[0];
    }

    return $value;
}


# Save settings (references to them) until the returned object goes out of
# scope.  "local" would not do: the settings are shared with the other
# packages through aliases, and local replaces the aliased variable.

sub save_settings {
    return Test::Nginx::Lite::Util::Saved->new(@_);
}


# the server root, by now that all subs are known

if ($Randomize) {
    $ServerPort = gen_rand_port({})
        or die "Cannot find a free port for TEST_NGINX_RANDOMIZE\n";
    $ServerPortForClient = $ServerPort;
}

$ServRoot = File::Spec->rel2abs($Randomize ? "t/servroot_$ServerPort"
                                           : $ENV{TEST_NGINX_SERVROOT}
                                             || 't/servroot');

$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

$LogDir     = File::Spec->catfile($ServRoot, 'logs');
$ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
$AccLogFile = File::Spec->catfile($LogDir, 'access.log');
$HtmlDir    = File::Spec->catfile($ServRoot, 'html');
$ConfDir    = File::Spec->catfile($ServRoot, 'conf');
$ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
$PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');



package Test::Nginx::Lite::Util::Saved;

sub new {
    my ($class, @refs) = @_;

    return bless [map { [$_, $$_] } @refs], $class;
}


sub DESTROY {
    my $self = shift;

    for my $saved (@$self) {
        ${ $saved->[0] } = $saved->[1];
    }
}


1;
