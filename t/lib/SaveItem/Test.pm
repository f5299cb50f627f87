package SaveItem::Test;

# What the t/*.t files share: loading the module into every block, the
# database settings from $TEST_NGINX_* (set by util/test.sh), psql, the
# check that every key a client got names a row holding its document, and
# the means for a block to act between its own requests.
#
# Every block stands on its own: it has its own --- config, so its own
# nginx.  The real Test::Nginx under TEST_NGINX_USE_VALGRIND stops nginx at
# the end of every block, so a block without --- config finds none; and it
# runs --- init some 30 ms after starting nginx under valgrind, before that
# nginx has read its configuration (where the module checks its tables).
# So an init that needs nginx calls wait_nginx() first (burst() does), and
# what must happen between two requests of a block goes in that block's
# --- after_response.

use strict;
use warnings;

use Test::More;
use Test::Nginx::Socket ();
use JSON::PP ();
use IO::Socket::INET;
use IO::Select;
use List::Util ();
use POSIX ();
use Time::HiRes ();

use Exporter 'import';
our @EXPORT = qw(psql pg_restart setup_tables check_pk_log pk_log_config
                 burst burst_results wait_nginx store_ok);

for my $var (qw(TEST_NGINX_SAVEITEM_MODULE TEST_NGINX_PG_SOCKET
                TEST_NGINX_PG_PORT TEST_NGINX_DB))
{
    die "$var is not set: run the suite with `make test` (util/test.sh)\n"
        unless defined $ENV{$var};
}

# the block being run, for the test names of what its --- init checks
our $Block;

# every block loads the module
Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;

    $Block = $block;

    if (defined $block->config && !defined $block->main_config) {
        $block->set_value('main_config',
                          "load_module $ENV{TEST_NGINX_SAVEITEM_MODULE};");
    }

    # read here, so the project's runner knows the section as the suite's
    my $hooks = $block->after_response;

    if (defined $hooks
        && (ref $hooks ne 'ARRAY'
            || grep { defined && ref ne 'CODE' } @$hooks))
    {
        die $block->name . ": --- after_response eval must give an array "
            . "of code refs (or undef), one per request\n";
    }
});


# --- after_response eval: [sub {...}, ...], one entry per request of the
# block (undef: nothing): each runs once that request's response has been
# checked, before the next request is sent (and before the log checks of
# that request).  For what a block does between its requests, e.g. freeze
# or thaw a PostgreSQL backend.  Not run with --- ignore_response (the
# framework then checks no response).

Test::Nginx::Socket::add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    my $hooks = $block->after_response or return;
    my $code = $hooks->[$req_idx] or return;

    $code->($block, $body);
});


sub psql {
    my ($sql) = @_;

    my @cmd = ('psql', '-X', '-q', '-v', 'VERBOSITY=terse', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
               '-h', $ENV{TEST_NGINX_PG_SOCKET}, '-p', $ENV{TEST_NGINX_PG_PORT},
               '-U', $ENV{TEST_NGINX_PG_USER} || 'postgres',
               '-d', $ENV{TEST_NGINX_PG_DB} || 'saveitem');

    open my $fh, '|-', @cmd, '-o', "/tmp/saveitem-psql.$$"
        or die "cannot run psql: $!";
    print $fh $sql;
    close $fh or die "psql failed ($?) on: $sql\n";

    open my $out, '<', "/tmp/saveitem-psql.$$" or die $!;
    local $/;
    my $res = <$out>;
    close $out;
    unlink "/tmp/saveitem-psql.$$";

    $res = '' unless defined $res;
    $res =~ s/\s+\z//;

    return $res;
}


sub pg_restart {
    system($ENV{SAVEITEM_PG_SH}, 'restart') == 0
        or die "util/pg.sh restart failed";
}


sub setup_tables {
    psql(shift);
}


# an access log of "pk <TAB> body" for every stored request of the file,
# outside the server root that each block wipes

sub pk_log_config {
    my ($file) = @_;

    return <<"_EOC_";
    log_format saveitem_pk escape=json
                           '\$uri\t\$saveitem_pk\t\$request_body';
    access_log $file saveitem_pk if=\$saveitem_pk;
_EOC_
}


# every key a client got names a row that holds its document; $tables maps
# a URI to [table, key column, document column]

sub check_pk_log {
    my ($file, $tables, $min) = @_;

    open my $fh, '<', $file or die "cannot read $file: $!";
    my @lines = <$fh>;
    close $fh;

    my $json = JSON::PP->new->allow_nonref;
    my ($n, %seen) = (0);

    for my $line (@lines) {
        chomp $line;
        my ($uri, $pk, $body) = split /\t/, $line, 3;
        next if !defined $body || $body eq '';

        my $t = $tables->{$uri} or die "no table for $uri in check_pk_log";
        my ($table, $key, $col) = @$t;

        # escape=json left both as the inside of a JSON string
        $pk = $json->decode(qq{"$pk"});
        $body = $json->decode(qq{"$body"});

        ok(!$seen{"$uri $pk"}++, "key $pk of $table was given once");

        my $tag = '$b' . int(rand(1e9)) . '$';
        my $lit = "'" . ($pk =~ s/'/''/gr) . "'";

        is(psql("SELECT ${col}::jsonb = ${tag}${body}${tag}::jsonb"
                . " FROM $table WHERE $key = $lit"),
           't', "row $pk of $table holds the document its client sent");
        $n++;
    }

    cmp_ok($n, '>=', $min, "at least $min stored documents checked");
    unlink $file;
}


# Concurrent clients, for what one connection at a time cannot show: after
# $delay seconds, one client per document POSTs it to $uri at once (with
# the header lines in @$headers, if any); each
# appends "document <TAB> status <TAB> body <TAB> Retry-After <TAB> seconds
# from connect to answer" to $out.  Returns at once;
# burst_results() waits for them and reads the answers.

my %Bursts;

sub burst {
    my ($uri, $docs, $out, $delay, $headers) = @_;

    unlink $out;

    # $delay counts from nginx answering, not from its start
    wait_nginx();

    my $start = Time::HiRes::time() + ($delay || 0);
    my $pid = fork() // die "fork: $!";

    if ($pid) {
        $Bursts{$out} = $pid;
        return;
    }

    # the launcher: no Test::Builder ending in the children
    Test::More->builder->no_ending(1);

    # the clients are forked at once and wait for $start together: forking
    # them one by one at $start spread them over a second or more on a
    # loaded machine, the last ones after the block's nginx had gone
    my @kids;

    for my $doc (@$docs) {
        my $kid = fork() // die "fork: $!";

        if ($kid == 0) {
            my $left = $start - Time::HiRes::time();
            Time::HiRes::sleep($left) if $left > 0;

            my $sent = Time::HiRes::time();
            my ($status, $body, $retry) = post($uri, $doc, $headers);
            my $took = sprintf('%.3f', Time::HiRes::time() - $sent);
            open my $fh, '>>', $out or die "cannot write $out: $!";
            flock($fh, 2);
            print $fh "$doc\t$status\t$body\t$retry\t$took\n";
            close $fh;
            POSIX::_exit(0);
        }

        push @kids, $kid;
    }

    waitpid($_, 0) for @kids;
    POSIX::_exit(0);
}


sub server_port {
    return $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
}


sub post {
    my ($uri, $doc, $headers) = @_;

    $headers = join '', map { "$_\r\n" } @{ $headers || [] };

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => server_port(),
                                     Timeout => 10)
        or return ('', "connect: $!");

    print $sock "POST $uri HTTP/1.1\r\nHost: localhost\r\n$headers"
                . "Content-Type: application/json\r\nConnection: close\r\n"
                . "Content-Length: " . length($doc) . "\r\n\r\n$doc";

    my $res = do { local $/; <$sock> } // '';
    close $sock;

    my ($status) = $res =~ m{^HTTP/1\.1 (\d+)};
    my ($retry) = $res =~ m{\r\nRetry-After: (\d+)\r\n}i;
    my (undef, $body) = split /\r\n\r\n/, $res, 2;
    $body //= '';
    chomp $body;

    return ($status // '', $body, $retry // '');
}


sub burst_results {
    my ($out) = @_;

    my $pid = delete $Bursts{$out};
    waitpid($pid, 0) if $pid;

    open my $fh, '<', $out or die "no answers in $out: $!";
    my @res = map { chomp; [split /\t/, $_, 5] } <$fh>;
    close $fh;
    unlink $out;

    return @res;
}


# Wait until the block's nginx answers an HTTP request (GET /: the root
# location, no module, no log line), so it has read its configuration and
# runs.  Under the real Test::Nginx with valgrind --- init comes long
# before that; otherwise it returns at once.  Dies after 30 s.

sub wait_nginx {
    my $deadline = Time::HiRes::time() + 30;
    my $err = '';

    while (Time::HiRes::time() < $deadline) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => server_port(),
                                         Timeout => 1);

        if ($sock) {
            print $sock "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";

            my $sel = IO::Select->new($sock);
            my $res = '';
            my $left = sub {
                List::Util::max(0, $deadline - Time::HiRes::time());
            };

            while ($sel->can_read($left->())) {
                my $n = sysread($sock, $res, 4096, length $res);
                last if !$n;
            }

            close $sock;

            return if $res =~ m{^HTTP/1\.[01] \d{3} };

            $err = "no HTTP answer";

        } else {
            $err = "connect: $!";
        }

        Time::HiRes::sleep(0.1);
    }

    die "nginx on port " . server_port() . " did not answer in 30 s ($err)\n";
}


# In a block's --- init: POST $doc to $uri on the block's nginx (once it
# answers) and check that it was stored: 200 and {"pk": key}.  One test.

sub store_ok {
    my ($uri, $doc, $what) = @_;

    wait_nginx();

    my ($status, $body) = post($uri, $doc);
    my $name = $Block ? $Block->name : $0;

    ok($status eq '200' && $body =~ /^\{"pk": "?[^"}]+"?\}$/,
       "$name - init: $what")
        or diag("POST $uri $doc: status '$status', body '$body'");
}


1;
