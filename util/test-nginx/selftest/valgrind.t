# Self-test of TEST_NGINX_USE_VALGRIND in the lite Test::Nginx::Socket (slow;
# run by "run.sh --valgrind"): nginx runs under memcheck, the tests pass,
# reports come out as warnings and are appended to error.log, and a
# valgrind.suppress in the current directory is used.

use strict;
use warnings;

use Cwd qw(getcwd);
use File::Basename qw(dirname);
use File::Spec ();
use File::Temp qw(tempdir);
use Test::More;

my $here = File::Spec->rel2abs(dirname(__FILE__));
my $lib = "$here/../lib";
my $file = "$here/valgrind/hello.t";

if (system('valgrind --version > /dev/null 2>&1') != 0) {
    plan skip_all => 'valgrind is not installed';
}

my $dir = tempdir(CLEANUP => 1);
my $cwd = getcwd();

chdir $dir or die "chdir $dir: $!";

local $ENV{TEST_NGINX_USE_VALGRIND} = 1;

# Debian's nginx 1.22 leaks two blocks at exit by itself
my $out = `$^X -I '$lib' '$file' 2>&1`;

is($?, 0, 'passes under valgrind');
like($out, qr/^ok 5 - .* TEST 2: a block of its own/m, 'all the tests ran');
like($out, qr/WARNING: \S+ TEST 1: .* - valgrind report:\n==\d+== /,
     'the report is a warning');
like($out, qr/definitely lost/, 'the report has the leak');
like($out, qr/fun:ngx_single_process_cycle/, 'with suppressions to copy');

my $servroot = $ENV{TEST_NGINX_SERVROOT} || "$dir/t/servroot";
my $log = do {
    open my $in, '<', "$servroot/logs/error.log" or die $!;
    local $/;
    <$in>;
};

like($log, qr/valgrind report:\n==\d+== .*definitely lost/s,
     'the report is in error.log');

open my $supp, '>', 'valgrind.suppress' or die $!;
print $supp <<'_EOS_';
{
   nginx-exit-leaks
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   ...
   fun:ngx_single_process_cycle
   fun:main
}
_EOS_
close $supp;

$out = `$^X -I '$lib' '$file' 2>&1`;

is($?, 0, 'passes with the suppressions');
unlike($out, qr/valgrind report/, 'valgrind.suppress silences the report');

# as in the real framework: --- init runs before nginx under valgrind
# listens, and nginx is stopped at the end of every block, so a block
# without --- config has none
$out = `$^X -I '$lib' '$here/valgrind/blocks.t' 2>&1`;

isnt($?, 0, 'a block without --- config fails under valgrind');
like($out, qr/^selftest init: nginx does not listen yet$/m,
     '--- init runs before nginx listens');
like($out, qr/^ok 1 - \S+ TEST 1: /m, 'the block with a config passes');
like($out, qr/^not ok \d+ - \S+ TEST 2: .* - Can't connect to /m,
     'the block without a config finds no nginx');
like($out, qr/stopped at the end of every block/, '... and says why');
unlike($out, qr/Retry connecting/, '... at once');

chdir $cwd;

done_testing();
