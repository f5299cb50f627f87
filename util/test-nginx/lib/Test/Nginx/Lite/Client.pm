package Test::Nginx::Lite::Client;

# The HTTP/1.x client of the lite Test::Nginx::Socket: turns the request
# sections of a block into the bytes to send, sends them over a raw socket
# (packet by packet, with delays), reads until the server closes, and parses
# the response the way Test::Nginx::Socket does.

use strict;
use warnings;

use Exporter 'import';
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes ();

use Test::Nginx::Lite::Util qw(:all);

our @EXPORT_OK = qw(get_req_from_block send_request parse_response);

my $connect_failures = 0;


# the requests of a block: a list of requests, each a list of packets
# ({ value => bytes, delay_before => seconds })

sub get_req_from_block {
    my ($block, $rand_ports) = @_;

    my $name = $block->name;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;

        if (ref $raw && ref $raw eq 'ARRAY') {
            return [[map { { value => $_ } } @$raw]];
        }

        return [[{ value => $raw }]];
    }

    my $request;

    if (defined $block->request_eval) {
        Test::More::diag("$name - request_eval DEPRECATED. Use request eval "
                         . "instead.");
        $request = eval $block->request_eval;
        if ($@) {
            warn $@;
        }

    } else {
        $request = $block->request;

        if (defined $request && !ref $request) {
            # leading blank lines and "#" comment lines
            while ($request =~ s/^\s*\#[^\n]+\s+|^\s+//gs) {
                # nothing
            }
        }
    }

    my $more_headers = $block->more_headers;
    $more_headers = '' if !defined $more_headers;

    my $pipelined = $block->pipelined_requests;

    if ($pipelined) {
        if (ref $pipelined ne 'ARRAY') {
            bail_out("$name - invalid entries in --- pipelined_requests");
        }

        my $data = '';

        for my $i (0 .. $#$pipelined) {
            my $conn = $i == $#$pipelined ? 'close' : 'keep-alive';
            my ($hdr, $chunked) = request_headers($name, $more_headers, $i);
            my $req = expand_env_in_text($pipelined->[$i], $name,
                                         $rand_ports);

            $data .= join '', map { $_->{value} }
                     @{ build_request($name, $hdr, $chunked, $conn,
                                      [{ value => $req }]) };
        }

        return [[{ value => $data }]];
    }

    if (!defined $request) {
        bail_out("$name - no --- request, --- raw_request or "
                 . "--- pipelined_requests section");
    }

    if (!ref $request) {
        my ($hdr, $chunked) = request_headers($name, $more_headers, 0);

        return [build_request($name, $hdr, $chunked, 'close',
                              [{ value => $request }])];
    }

    if (ref $request ne 'ARRAY') {
        bail_out("$name - invalid ---request : MUST be string or array of "
                 . "requests");
    }

    my @reqs;

    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        my ($hdr, $chunked) = request_headers($name, $more_headers, $i);
        my @packets;

        if (!ref $one) {
            @packets = ({ value => $one });

        } elsif (ref $one eq 'ARRAY') {
            for my $packet (@$one) {
                if (!ref $packet) {
                    push @packets, { value => $packet };

                } elsif (ref $packet eq 'HASH') {
                    push @packets, { %$packet };

                } else {
                    bail_out("$name - Invalid syntax. $packet should be a "
                             . "string or hash with value.");
                }
            }

        } else {
            bail_out("$name - Invalid syntax. $one should be a string or an "
                     . "array of packets.");
        }

        push @reqs, build_request($name, $hdr, $chunked, 'close', \@packets);
    }

    return \@reqs;
}


# the --- more_headers of request $i (the section may be an array, one
# entry per request), as "Key: value\r\n" lines

sub request_headers {
    my ($name, $more_headers, $i) = @_;

    if (ref $more_headers eq 'ARRAY') {
        $more_headers = $more_headers->[$i];

        if (!defined $more_headers) {
            bail_out("$name - --- more_headers lacks data for request $i");
        }
    }

    my $out = '';
    my $chunked;

    for my $line (split /\n+/, $more_headers) {
        next if $line =~ /^\s*\#/;

        my ($key, $val) = split /:\s*/, $line, 2;
        $val = '' if !defined $val;

        if (lc $key eq 'transfer-encoding' && $val eq 'chunked') {
            $chunked = 1;
        }

        $out .= "$key: $val\r\n";
    }

    return ($out, $chunked);
}


# Rewrite a request given as "METHOD [URI [VERSION]]\nbody" (possibly cut
# into packets) into HTTP: the request line completed, the headers inserted
# after it, the body trimmed when a Content-Length is added.  The edits are
# made on the concatenated text and then mapped back onto the packets, so a
# packet keeps the bytes it was given, plus or minus the edits inside it.

sub build_request {
    my ($name, $more_headers, $chunked, $conn, $packets) = @_;

    my $text = join '', map { defined $_->{value} ? $_->{value} : '' }
                        @$packets;

    my ($first) = $text =~ /\A([^\n]*\n?)/;

    if ($first eq '') {
        bail_out("$name - Request line should be non-empty");
    }

    if ($first !~ /^(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)$/) {
        bail_out("$name - Request line is not valid. Should be 'meth [url "
                 . "[version]]' but got \"$first\".");
    }

    my ($meth, $url, $ver) = ($2, $4, $6);

    # offsets of the groups: 1 leading space, 2 method, 4 url, 6 version,
    # 3, 5, 7 and 8 the spaces after them
    my @start = @-;
    my @end = @+;

    my $content = substr $text, length $first;
    my $len_header = '';

    if (!$chunked
        && $content ne ''
        && $more_headers !~ /(?:^|\n)Content-Length:/)
    {
        $content =~ s/^\s+|\s+$//gs;
        $len_header = 'Content-Length: ' . length($content) . "\r\n";
    }

    my $headers = '';

    if ($more_headers !~ /(?:^|\n)Host:/msi) {
        $headers .= "Host: $ServerName\r\n";
    }

    if ($more_headers !~ /(?:^|\n)Connection/msi) {
        $headers .= "Connection: $conn\r\n";
    }

    $headers .= "$more_headers$len_header\r\n";

    my @edits = ([$start[1], $end[1] - $start[1], ''],
                 [$start[2], $end[2] - $start[2], "$meth "],
                 [$start[3], $end[3] - $start[3], '']);

    if (defined $url) {
        push @edits, [$start[4], $end[4] - $start[4], "$url "],
                     [$start[5], $end[5] - $start[5], ''];

    } else {
        push @edits, [$end[3], 0, '/ '];
    }

    my $tail = defined $ver ? $start[7] : defined $url ? $end[5] : $end[3];

    if (defined $ver) {
        push @edits, [$start[6], $end[6] - $start[6], "$ver\r\n"];

    } else {
        push @edits, [$tail, 0, "HTTP/1.1\r\n"];
    }

    push @edits, [$tail, length($first) - $tail, ''],
                 [length $first, 0, $headers];

    if ($len_header ne '') {
        push @edits, [length $first, length($text) - length($first),
                      $content];
    }

    return apply_edits($text, $packets, \@edits);
}


# Apply edits ([offset, length, replacement], in order, not overlapping) to
# the concatenation of the packets.  A replacement spanning several packets
# is spread over them: each gets as many bytes as it had in the replaced
# range, the last one the rest; an insertion at a packet boundary goes to
# the end of the earlier packet.

sub apply_edits {
    my ($text, $packets, $edits) = @_;

    my (@ranges, @out);
    my $off = 0;

    for my $p (@$packets) {
        my $len = defined $p->{value} ? length $p->{value} : 0;
        push @ranges, [$off, $off + $len];
        push @out, '';
        $off += $len;
    }

    my $copy = sub {
        my ($from, $to) = @_;

        for my $i (0 .. $#ranges) {
            my ($ps, $pe) = @{ $ranges[$i] };
            my $lo = $from > $ps ? $from : $ps;
            my $hi = $to < $pe ? $to : $pe;

            if ($lo < $hi) {
                $out[$i] .= substr $text, $lo, $hi - $lo;
            }
        }
    };

    my $cursor = 0;

    for my $edit (@$edits) {
        my ($at, $len, $repl) = @$edit;

        $copy->($cursor, $at);
        $cursor = $at + $len;

        if ($len == 0) {
            my $idx = 0;

            for my $i (0 .. $#ranges) {
                if ($ranges[$i][0] < $at && $at <= $ranges[$i][1]) {
                    $idx = $i;
                    last;
                }
            }

            $out[$idx] .= $repl;
            next;
        }

        my @hit = grep { $ranges[$_][0] < $at + $len && $ranges[$_][1] > $at }
                  0 .. $#ranges;

        for my $j (0 .. $#hit) {
            my ($ps, $pe) = @{ $ranges[$hit[$j]] };

            if ($j == $#hit) {
                $out[$hit[$j]] .= $repl;
                last;
            }

            my $lo = $at > $ps ? $at : $ps;
            my $n = ($at + $len < $pe ? $at + $len : $pe) - $lo;

            $out[$hit[$j]] .= substr $repl, 0, $n, '';
        }
    }

    $copy->($cursor, length $text);

    my @result;

    for my $i (0 .. $#$packets) {
        push @result, { %{ $packets->[$i] }, value => $out[$i] };
    }

    return \@result;
}


# Send one request (a list of packets) on a new connection and read the
# response until the server closes it or no I/O happens for $timeout
# seconds.  Returns the raw response and whether this was a HEAD request.

sub send_request {
    my ($packets, $middle_delay, $timeout, $block) = @_;

    my $name = $block->name;
    my $all = join '', map { $_->{value} } @$packets;
    my $head_req = $all =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $sock = connect_server($block, $timeout);

    if (!defined $sock) {
        return (undef, $head_req);
    }

    $sock->blocking(0);

    local $SIG{PIPE} = 'IGNORE';

    my @queue = @$packets;
    my $buf = (shift @queue)->{value};
    my $written = 0;
    my $resp = '';
    my $reading = 1;
    my $writing = 1;

    while ($reading || $writing) {
        my $rsel = IO::Select->new($reading ? $sock : ());
        my $wsel = IO::Select->new($writing ? $sock : ());

        $! = 0;
        my ($readable, $writable) = IO::Select->select($rsel, $wsel, undef,
                                                       $timeout);

        if (!$readable && !$writable) {
            next if $! == EINTR;

            if (!defined $block->abort) {
                Test::More::fail("ERROR: client socket timed out - $name\n");
            }

            last;
        }

        if ($writable && @$writable) {
            while (1) {
                my $rest = length($buf) - $written;

                if ($rest > 0) {
                    my $n = syswrite $sock, $buf, $rest, $written;

                    if (!defined $n) {
                        last if $! == EAGAIN || $! == EWOULDBLOCK;

                        # the server may have answered and closed already:
                        # stop writing and read what it said
                        warn "WARNING: $name - write failed: $!\n";
                        $writing = 0;
                        last;
                    }

                    $written += $n;
                    next;
                }

                my $next = shift @queue;

                if (!defined $next) {
                    $writing = 0;

                    my $how = $block->shutdown;
                    if (defined $how) {
                        shutdown $sock, ($how =~ /^\s*$/ ? 1 : $how);
                    }

                    last;
                }

                my $delay = defined $next->{delay_before}
                            ? $next->{delay_before} : $middle_delay;
                if ($delay) {
                    Time::HiRes::sleep($delay);
                }

                $buf = $next->{value};
                $written = 0;
            }
        }

        if ($readable && @$readable) {
            while (1) {
                my $n = sysread $sock, my $data, 4096;

                if (!defined $n) {
                    last if $! == EAGAIN || $! == EWOULDBLOCK;

                    warn "WARNING: $name - HTTP response read failure: $!\n";
                    $reading = 0;
                    $writing = 0;
                    last;
                }

                if ($n == 0) {
                    $reading = 0;
                    $writing = 0;
                    last;
                }

                $resp .= $data;
            }
        }
    }

    close $sock;

    return ($resp, $head_req);
}


# connect, retrying while nginx comes up (slowly under valgrind)

sub connect_server {
    my ($block, $timeout) = @_;

    my $name = $block->name;
    my $addr = $block->server_addr_for_client;
    $addr = $ServerAddr if !defined $addr;

    my $total = $connect_failures ? 20 : 50;

    for my $try (1 .. $total) {
        my $sock = IO::Socket::INET->new(
            PeerAddr => $addr,
            PeerPort => $ServerPortForClient,
            Proto    => 'tcp',
            Timeout  => $timeout,
        );

        return $sock if defined $sock;

        my $err = $!;

        # under valgrind nginx is stopped at the end of every block: a
        # block without --- config has none (the real framework fails at
        # once too, its child being gone)
        if (!defined $ChildPid && defined $StoppedChildPid) {
            warn "WARNING: Child process $StoppedChildPid is already gone "
                 . "(under valgrind nginx is stopped at the end of every "
                 . "block: a block without --- config has none).\n";

            Test::More::fail("$name - Can't connect to "
                             . "$addr:$ServerPortForClient: $err (aborted)\n");
            return undef;
        }

        if (defined $ChildPid && waitpid($ChildPid, WNOHANG) != 0) {
            warn "WARNING: Child process $ChildPid is already gone.\n";
            undef $ChildPid;

            if (open my $in, '<', $ErrLogFile) {
                my @lines = <$in>;
                warn @lines[($#lines > 19 ? $#lines - 19 : 0) .. $#lines];
            }

            Test::More::fail("$name - Can't connect to "
                             . "$addr:$ServerPortForClient: $err (aborted)\n");
            return undef;
        }

        last if $try == $total;

        my $wait = ($TestNginxSleep + $TestNginxSleep * $try) * $try / 2;
        $wait = 1 if $wait > 1;

        if ($wait >= 0.6) {
            warn "$name - Can't connect to $addr:$ServerPortForClient: "
                 . "$err\n\tRetry connecting after $wait sec\n";
        }

        Time::HiRes::sleep($wait);
    }

    my $msg = "$name - Can't connect to $addr:$ServerPortForClient: $! "
              . "(aborted)\n";

    if (++$connect_failures >= 3) {
        bail_out($msg);
    }

    Test::More::fail($msg);

    return undef;
}


# Parse a raw response: returns the HTTP::Response with the body de-chunked
# (or cut to its Content-Length), the raw status line and headers, and the
# bytes left after this response (pipelined requests).

sub parse_response {
    my ($name, $raw_resp, $head_req) = @_;

    my $raw_headers = '';

    if ($raw_resp =~ /(.*?\r\n)\r\n/s) {
        $raw_headers = $1;
    }

    my $res = HTTP::Response->parse($raw_resp);
    my $code = $res->code;

    if (defined $code && $code !~ /^\d+$/) {
        undef $code;
        $res->code(undef);
    }

    if ($code && ($code == 304 || $code == 101)) {
        return ($res, $raw_headers);
    }

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $left;

    if (defined $enc && $enc eq 'chunked') {
        my $raw = $res->content;
        $raw = '' if !defined $raw;

        my $decoded = '';

        while (1) {
            if ($raw =~ /\G 0 [\ \t]* \r\n \r\n /gcsx) {
                if ($raw =~ /\G (.+) /gcsx) {
                    $left = $1;
                }

                last;
            }

            if ($raw =~ /\G [\ \t]* ([A-Fa-f0-9]+) [\ \t]* \r\n /gcsx) {
                my $size = hex $1;

                if (length($raw) - pos($raw) < $size) {
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(not enought octets for the data "
                                     . "section)");
                    return;
                }

                $decoded .= substr $raw, pos($raw), $size;
                pos($raw) += $size;

                if ($raw !~ /\G\r\n/gcs) {
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(expected CRLF).");
                    return;
                }

                next;
            }

            if ($raw =~ /\G(.+)/gcs) {
                Test::More::fail("$name - invalid chunked body received: $1");

            } else {
                Test::More::fail("$name - no last chunk found - $raw");
            }

            return;
        }

        $res->content($decoded);

    } elsif (defined $len && $len =~ /^\d+$/) {
        my $raw = $res->content;
        $raw = '' if !defined $raw;

        if (length $raw < $len) {
            if (!$head_req) {
                warn "WARNING: $name - response body truncated: $len "
                     . "expected, but got " . length($raw) . "\n";
            }

        } elsif (length $raw > $len) {
            $left = substr $raw, $len;
            $res->content(substr $raw, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}


1;
