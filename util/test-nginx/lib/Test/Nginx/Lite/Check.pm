package Test::Nginx::Lite::Check;

# The assertions of the lite Test::Nginx::Socket: one block's requests with
# the checks on each response, and the error.log / access.log checks.  The
# number and names of the tests are those of Test::Nginx::Socket, so that
# a "plan tests => N" holds under both.

use strict;
use warnings;

use Exporter 'import';
use Digest::MD5 ();
use Digest::SHA ();
use Encode ();
use HTTP::Response ();
use List::Util qw(min);
use Test::More ();
use Time::HiRes ();

use Test::Nginx::Lite::Util qw(:all);
use Test::Nginx::Lite::Client qw(get_req_from_block send_request
                                 parse_response);

our @EXPORT_OK = qw(run_requests check_error_log check_shutdown_error_log);


# send the requests of a block and check the responses and the logs: one
# round of repeat_each()

sub run_requests {
    my ($block, $repeated_req_idx, $rand_ports) = @_;

    my $name = $block->name;
    my $reqs = get_req_from_block($block, $rand_ports);

    if (!@$reqs) {
        bail_out("$name - request empty");
    }

    my $timeout = parse_time($block->timeout);
    $timeout = timeout() if !defined $timeout;

    my ($res, $n, $need_array);
    my $req_idx = 0;

    for my $one_req (@$reqs) {
        my ($raw_resp, $head_req) =
            send_request($one_req, scalar $block->raw_request_middle_delay,
                         $timeout, $block);

        if ($block->pipelined_requests) {
            $n = @{ $block->pipelined_requests };
            $need_array = 1;

        } else {
            $need_array = @$reqs > 1;
        }

        # the responses to pipelined requests come in one piece: take them
        # one by one
        while (1) {
            $raw_resp = '' if !defined $raw_resp;

            my ($raw_headers, $left);

            if (!defined $block->ignore_response) {
                if (defined $block->http09) {
                    $res = HTTP::Response->new(200, 'OK', [], $raw_resp);
                    $raw_headers = '';

                } else {
                    ($res, $raw_headers, $left) =
                        parse_response($name, $raw_resp, $head_req);
                }
            }

            if (!$n) {
                if ($left) {
                    $left =~ s/([\0-\037\200-\377])/
                               sprintf('\x{%02x}', ord $1)/egx;
                    warn "WARNING: $name - unexpected extra bytes after last "
                         . "chunk in response: \"$left\"\n";
                }

            } else {
                $raw_resp = $left;
                $n--;
            }

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $req_idx,
                                           $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx,
                                       $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $req_idx,
                                    $repeated_req_idx, $need_array,
                                    $rand_ports);
            }

            if ($n || $req_idx < @$reqs - 1) {
                if ($block->wait) {
                    Time::HiRes::sleep(scalar $block->wait);
                }

                check_error_log($block, $repeated_req_idx, $rand_ports);

                if (!defined $block->ignore_response) {
                    check_access_log($block, $repeated_req_idx);
                }
            }

            $req_idx++;

            last if !$n;
        }
    }

    if ($block->wait) {
        Time::HiRes::sleep(scalar $block->wait);
    }

    check_error_log($block, $repeated_req_idx, $rand_ports);

    if (!defined $block->ignore_response) {
        check_access_log($block, $repeated_req_idx);
    }
}


sub check_error_code {
    my ($block, $res, $req_idx, $need_array) = @_;

    my $name = $block->name;
    my $code = ($res && $res->code) || '';

    if (defined $block->error_code_like) {
        my $val = get_indexed_value($name, $block->error_code_like, $req_idx,
                                    $need_array);
        Test::More::like($code, qr/$val/sm, "$name - status code ok");

    } elsif (defined $block->error_code) {
        Test::More::is($code,
                       get_indexed_value($name, $block->error_code, $req_idx,
                                         $need_array),
                       "$name - status code ok");

    } else {
        Test::More::is($code, 200, "$name - status code ok");
    }
}


sub check_raw_response_headers {
    my ($block, $raw_headers, $req_idx, $need_array) = @_;

    my $name = $block->name;

    $raw_headers = '' if !defined $raw_headers;

    if (defined $block->raw_response_headers_like) {
        my $expected = get_indexed_value($name,
                                         $block->raw_response_headers_like,
                                         $req_idx, $need_array);
        Test::More::like($raw_headers, qr/$expected/s,
                         "$name - raw resp headers like");
    }

    if (defined $block->raw_response_headers_unlike) {
        my $expected = get_indexed_value($name,
                                         $block->raw_response_headers_unlike,
                                         $req_idx, $need_array);
        Test::More::unlike($raw_headers, qr/$expected/s,
                           "$name - raw resp headers unlike");
    }
}


# "Name: value" lines; "! Name" for a header that must be absent (undef).
# A repeated name keeps its last value, as in the real framework's hash.

sub parse_headers {
    my $text = shift;

    my (@keys, %headers);

    for my $line (split /\n/, $text) {
        $line =~ s/^\s+|\s+$//g;

        my ($key, $val);

        if ($line =~ s/^!\s*//) {
            $key = $line;

        } else {
            ($key, $val) = split /\s*:\s*/, $line, 2;
        }

        next if !defined $key;

        push @keys, $key if !exists $headers{$key};
        $headers{$key} = $val;
    }

    return map { [$_, $headers{$_}] } @keys;
}


sub check_response_headers {
    my ($block, $res, $raw_headers, $req_idx, $need_array) = @_;

    my $name = $block->name;

    $raw_headers = '' if !defined $raw_headers;

    if (defined $block->response_headers) {
        my $spec = get_indexed_value($name, $block->response_headers,
                                     $req_idx, $need_array);

        for my $header (parse_headers($spec)) {
            my ($key, $val) = @$header;

            if (!defined $val) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                                   "$name - header $key not present in the "
                                   . "raw headers");
                next;
            }

            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;

            my $actual = $res ? $res->header($key) : undef;
            $actual = '' if !defined $actual;

            Test::More::is($actual, $val, "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        my $spec = get_indexed_value($name, $block->response_headers_like,
                                     $req_idx, $need_array);

        for my $header (parse_headers($spec)) {
            my ($key, $val) = @$header;

            $val = '' if !defined $val;

            my $actual = $res ? $res->header($key) : undef;
            $actual = '' if !defined $actual;

            Test::More::like($actual, qr/^$val$/,
                             "$name - header $key like ok");
        }
    }
}


# --- response_body_filters: the actual body through named filters or subs

sub transform_response_body {
    my ($block, $res, $req_idx) = @_;

    my $filters = $block->response_body_filters;

    return if !defined $res || !defined $filters;

    my $name = $block->name;
    my $content = $res->content;

    return if !defined $content;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];

    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }

    if (ref $filters->[0] eq 'ARRAY') {
        if (grep { ref $_ ne 'ARRAY' } @$filters) {
            bail_out("$name - the --- response_body_filters two-dimensional "
                     . "array only be like [[uc], [lc]] not [[uc], lc]");
        }

        $filters = $filters->[$req_idx];

        if (!defined $filters) {
            bail_out("$name - the ---response_body_filters two-dimensional "
                     . "array unmatch the specified request($req_idx)");
        }
    }

    my %builtin = (
        md5_hex  => \&Digest::MD5::md5_hex,
        sha1_hex => \&Digest::SHA::sha1_hex,
        uc       => sub { uc $_[0] },
        lc       => sub { lc $_[0] },
        ucfirst  => sub { ucfirst $_[0] },
        lcfirst  => sub { lcfirst $_[0] },
        length   => sub { length $_[0] },
    );

    for my $filter (@$filters) {
        if (ref $filter eq 'CODE') {
            $content = $filter->($content);

        } elsif (!ref $filter && $builtin{$filter}) {
            $content = $builtin{$filter}->($content);

        } elsif (!ref $filter) {
            bail_out("$name - unknown filter, \"$filter\", specified in the "
                     . "--- response_body_filters section");

        } else {
            bail_out("$name - the --- response_body_filters section only "
                     . "supports subroutine reference values and string "
                     . "values");
        }
    }

    $res->content($content);
}


sub check_response_body {
    my ($block, $res, $req_idx, $repeated_req_idx, $need_array,
        $rand_ports) = @_;

    my $name = $block->name;

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $content = $res ? $res->content : undef;
        my $expected;

        if (defined $block->response_body_eval) {
            Test::More::diag("$name - response_body_eval is DEPRECATED. Use "
                             . "response_body eval instead.");
            $expected = eval get_indexed_value($name,
                                               $block->response_body_eval,
                                               $req_idx, $need_array);
            if ($@) {
                warn $@;
            }

        } else {
            $expected = get_indexed_value($name, $block->response_body,
                                          $req_idx, $need_array);
        }

        if ($block->charset) {
            Encode::from_to($expected, 'UTF-8', scalar $block->charset);
        }

        if (defined $expected && !ref $expected) {
            $expected = expand_env_in_text($expected, $name, $rand_ports);
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }

        my $desc = "(repeated req $repeated_req_idx, req $req_idx)";

        if (ref $expected) {
            Test::More::like($content, $expected,
                             "$name - response_body - like $desc");

        } else {
            is_str($content, $expected,
                   "$name - response_body - response is expected $desc");
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $like = defined $block->response_body_like;
        my $type = $like ? 'like' : 'unlike';
        my $patterns = $like ? $block->response_body_like
                             : $block->response_body_unlike;

        my $content = $res ? $res->content : undef;
        my $pat = get_indexed_value($name, $patterns, $req_idx, $need_array);

        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;

        my $summary = trim($content);
        $summary = '' if !defined $summary;

        my $desc = "$name - response_body_$type - response is expected "
                   . "($summary)";

        if ($like) {
            Test::More::like($content, qr/$pat/s, $desc);

        } else {
            Test::More::unlike($content, qr/$pat/s, $desc);
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $req_idx,
                 $repeated_req_idx, 0);
    }
}


# a log section's patterns: a plain value is one literal substring a line,
# an eval may give a qr// or an array of strings and qr//s

sub log_patterns {
    my $pats = shift;

    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }

    if (ref $pats eq 'Regexp') {
        return [$pats];
    }

    return [@$pats];
}


sub line_matches {
    my ($line, $pat) = @_;

    return (ref $pat && $line =~ /$pat/) || $line =~ /\Q$pat\E/;
}


sub value_contains {
    my ($val, $pat) = @_;

    if (!ref $val || ref $val eq 'Regexp') {
        return $val =~ /\Q$pat\E/;
    }

    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if value_contains($v, $pat);
        }
    }

    return undef;
}


# --- error_log: each pattern must match a line; --- no_error_log: none
# may; lines from $lines (read once by the caller), a "log" for the names

sub check_log_patterns {
    my ($name, $want, $dont, $lines, $log, $suffix) = @_;

    if (defined $want) {
        my $pats = log_patterns($want);

        for my $line (@$lines) {
            for my $pat (@$pats) {
                next if !defined $pat;

                if (line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"$pat\" matches a line "
                                     . "in $log$suffix");
                    undef $pat;
                }
            }
        }

        for my $pat (@$pats) {
            next if !defined $pat;

            Test::More::fail("$name - pattern \"$pat\" should match a line "
                             . "in $log$suffix");
        }
    }

    if (defined $dont) {
        my $pats = log_patterns($dont);
        my %found;

        for my $i (0 .. $#$lines) {
            my $line = $lines->[$i];

            for my $pat (@$pats) {
                next if !defined $pat;
                next if !line_matches($line, $pat);

                $found{$pat} = 1;

                my $more = join '',
                           @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];

                Test::More::fail("$name - pattern \"" . fmt_str($pat)
                                 . "\" should not match any line in $log but "
                                 . "matches line \"" . fmt_str($line)
                                 . "\"$suffix\n$more");
            }
        }

        for my $pat (@$pats) {
            next if !defined $pat || $found{$pat};

            Test::More::pass("$name - pattern \"" . fmt_str($pat)
                             . "\" does not match a line in $log$suffix");
        }
    }
}


sub check_error_log {
    my ($block, $repeated_req_idx, $rand_ports) = @_;

    my $name = $block->name;
    my $suffix = defined $repeated_req_idx ? " (req $repeated_req_idx)" : '';
    my $lines;

    my $grep_pat = $block->grep_error_log;

    if (defined $grep_pat) {
        if (ref $grep_pat && ref $grep_pat eq 'ARRAY') {
            $grep_pat = $grep_pat->[$repeated_req_idx];
        }

    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but "
                 . "--- grep_error_log_out is defined");
    }

    if (defined $grep_pat) {
        my $expected = $block->grep_error_log_out;

        if (!defined $expected) {
            bail_out("$name - No --- grep_error_log_out defined but "
                     . "--- grep_error_log is defined");
        }

        if (ref $expected && ref $expected eq 'ARRAY') {
            $expected = $expected->[$repeated_req_idx];
        }

        if (defined $expected && !ref $expected) {
            $expected = expand_env_in_text($expected, $name, $rand_ports);
        }

        $lines ||= error_log_data() || [];

        my $matched = '';

        for my $line (@$lines) {
            if (ref $grep_pat && $line =~ /$grep_pat/
                || $line =~ /\Q$grep_pat\E/)
            {
                my $m = $&;
                $matched .= "$m\n" if $m !~ /\n/;
            }
        }

        my $desc = "$name - grep_error_log_out$suffix";

        if (ref $expected && ref $expected eq 'Regexp') {
            Test::More::like($matched, $expected, $desc);

        } else {
            is_str($matched, $expected, $desc);
        }
    }

    my %warn_on = ('[alert' => 1, '[crit' => 1, '[emerg' => 1);

    for my $section (scalar $block->error_log, scalar $block->no_error_log) {
        next if !defined $section;

        for my $level (keys %warn_on) {
            if (value_contains($section, $level)) {
                $warn_on{$level} = 0;
            }
        }
    }

    if (defined $block->error_log || defined $block->no_error_log) {
        $lines ||= error_log_data() || [];

        check_log_patterns($name, scalar $block->error_log,
                           scalar $block->no_error_log, $lines, 'error.log',
                           $suffix);
    }

    $lines ||= error_log_data() || [];

    for my $line (@$lines) {
        for my $level (sort keys %warn_on) {
            next if !$warn_on{$level};

            if ($line =~ /\Q$level\E\]/) {
                warn "WARNING: $name - " . fmt_str($line) . "\n";
            }
        }
    }

    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            my $copy = $line;
            chomp $copy;
            Test::More::fail("$name - $copy\n");
        }
    }
}


sub check_access_log {
    my ($block, $repeated_req_idx) = @_;

    return if !defined $block->access_log && !defined $block->no_access_log;

    check_log_patterns(scalar $block->name, scalar $block->access_log,
                       scalar $block->no_access_log, access_log_data(),
                       'access.log', " (req $repeated_req_idx)");
}


# --- shutdown_error_log (and --- no_shutdown_error_log, which counts only
# with it, as in the real framework) of the block whose nginx has just been
# stopped

sub check_shutdown_error_log {
    my $block = shift;

    my $name = $block->name;
    my $lines = error_log_data() || [];

    check_log_patterns($name, scalar $block->shutdown_error_log,
                       scalar $block->no_shutdown_error_log, $lines,
                       'error.log', '');

    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*? failed\.$/) {
            my $copy = $line;
            chomp $copy;
            Test::More::fail("$name - $copy");
        }
    }
}


1;
