# Self-test of the lite Test::Nginx::Socket: files in ../fail/ must fail (or
# die, or bail out) in exactly the expected way, and leave no nginx behind.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec ();
use Test::More;

my $dir = File::Spec->rel2abs(dirname(__FILE__) . '/../fail');
my $lib = File::Spec->rel2abs(dirname(__FILE__) . '/../../lib');
my $servroot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');

# file, whether it must exit non-zero, patterns its output must match
my @cases = (
    ['body.t', 1,
     qr/^not ok 2 - \S+ TEST 1: wrong body - response_body - response is/m],
    ['status.t', 1,
     qr/^not ok 1 - .* - status code ok$/m,
     qr/^not ok \d+ - .* - header X-Present ok$/m,
     qr/^not ok \d+ - .* - header X-Gone not present in the raw headers$/m],
    ['logs.t', 1,
     qr/^ok 1 - .* - status code ok$/m,
     qr/^not ok \d+ - .* - grep_error_log_out \(req 0\)$/m,
     qr/^not ok \d+ - .* pattern "this line is not in the log" should match/m,
     qr/^not ok \d+ - .* "No such file or directory" should not match any/m],
    ['like.t', 1,
     qr/^not ok 1 - .* - status code ok$/m,
     qr/^not ok 2 - .* - response_body_like - response is expected/m],
    ['timeout.t', 1,
     qr/^not ok 1 - ERROR: client socket timed out - \S+ TEST 1/m],
    ['assertion.t', 1,
     qr/^not ok \d+ - .* Assertion `x != NULL' failed\.$/m],
    ['alert.t', 0,
     qr/^ok 2 - /m,
     qr/WARNING: \S+ TEST 1: alert in the log - .*\[alert\] 1#1: selftest/],
    ['unknown-section.t', 1,
     qr/TEST 1: typo: unknown section "--- respones_body"/],
    ['unsupported-section.t', 1,
     qr/section "--- tcp_listen" is not supported/],
    ['undefined-env.t', 1,
     qr/Bail out!.*No environment TEST_NGINX_SELFTEST_UNDEFINED defined/],
    ['must-die-lives.t', 1,
     qr/^not ok 1 - .* - die as expected$/m,
     qr/nginx must die but it does not; killing it/],
    ['bad-config.t', 1,
     qr/Bail out!.*Cannot start nginx/,
     qr/unknown directive "no_such_directive"/],
    ['die-mid-run.t', 1,
     qr/^ok 2 - /m,
     qr/Bail out!.*init failed: selftest init failure/],
    ['plan.t', 1,
     qr/planned 3 tests but ran 2/],
    ['chunked.t', 1,
     qr/^not ok 1 - \S+ TEST 1: "chunked" .* invalid chunked body received/m],
);

for my $case (@cases) {
    my ($file, $should_fail, @patterns) = @$case;

    my $out = `timeout 120 $^X -I '$lib' '$dir/$file' 2>&1`;
    my $status = $?;

    if ($should_fail) {
        isnt($status, 0, "$file exits non-zero");

    } else {
        is($status, 0, "$file exits 0");
    }

    for my $pat (@patterns) {
        like($out, $pat, "$file output matches $pat") or diag($out);
    }

    is(nginx_left(), '', "$file leaves no nginx behind");
}

# a run killed while nginx runs bails out and stops nginx
{
    my $pid = open my $in, '-|';

    if (!defined $pid) {
        die "fork: $!";
    }

    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec $^X, '-I', $lib, "$dir/interrupted.t";
        exit 127;
    }

    sleep 2;
    kill 'TERM', $pid;

    my $output = do { local $/; <$in> };
    close $in;

    is($? >> 8, 255, 'interrupted.t exits 255');
    like($output, qr/Bail out!\s+interrupted by SIGTERM/,
         'interrupted.t bails out');
    is(nginx_left(), '', 'interrupted.t leaves no nginx behind');
}

# the special modes this runner does not implement are refused
for my $var (qw(TEST_NGINX_CHECK_LEAK TEST_NGINX_USE_HTTP2
                TEST_NGINX_NO_NGINX_MANAGER))
{
    my $out = `$var=1 timeout 60 $^X -I '$lib' '$dir/body.t' 2>&1`;

    isnt($?, 0, "$var=1 is refused");
    like($out, qr/\Q$var\E is set, but .* is not supported/,
         "$var=1 message");
}

done_testing();


# nginx processes started for our server root, if any

sub nginx_left {
    my @left;

    for my $cmdline (glob '/proc/[0-9]*/cmdline') {
        open my $in, '<', $cmdline or next;
        my $args = do { local $/; <$in> };
        close $in;

        next if !defined $args;

        $args =~ s/\0/ /g;

        if ($args =~ /nginx/ && index($args, "$servroot/") >= 0) {
            push @left, $args;
        }
    }

    return join "\n", @left;
}
