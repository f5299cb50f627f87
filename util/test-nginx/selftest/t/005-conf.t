# Self-test of the lite Test::Nginx::Socket: the generated nginx.conf and the
# settings functions.

use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
worker_connections(128);
env_to_nginx("SELFTEST_FOO", "SELFTEST_BAR=baz qux");
log_level('info');
no_root_location();
no_shuffle();

our $conf_checks = <<'_EOC_';
my $conf = do {
    open my $in, '<', $Test::Nginx::Socket::ConfFile or die $!;
    local $/;
    <$in>;
};
my $root = Test::Nginx::Socket::server_root();
my $port = Test::Nginx::Socket::server_port();
like($conf, qr/^worker_processes\s+2;$/m, "$name - workers");
like($conf, qr/^daemon on;\nmaster_process on;$/m, "$name - master");
like($conf, qr/^error_log \Q$root\E\/logs\/error\.log info;$/m,
     "$name - error_log");
like($conf, qr/^pid\s+\Q$root\E\/logs\/nginx\.pid;$/m, "$name - pid");
like($conf, qr/^env SELFTEST_FOO;\nenv 'SELFTEST_BAR=baz qux';$/m,
     "$name - env");
like($conf, qr/worker_rlimit_nofile 512;.*\nhttp \{/s, "$name - main_config");
like($conf, qr/\n\}\s+pcre_jit on;\s+events \{/s, "$name - post_main_config");
like($conf, qr/^\s+listen\s+$port;$/m, "$name - listen");
like($conf, qr/^\s+server_name\s+'localhost';$/m, "$name - server_name");
like($conf, qr/^\s+client_max_body_size 30M;$/m, "$name - body size");
like($conf, qr/^\s+client_body_temp_path \Q$root\E\/client_body_temp;$/m,
     "$name - temp path");
like($conf, qr/accept_mutex off;\s+worker_connections\s+128;/,
     "$name - events");
unlike($conf, qr/location \/ \{/, "$name - no root location");
like($conf, qr/^user root;$/m, "$name - user") if $> == 0;
is($ENV{TEST_NGINX_SERVER_ROOT}, $root, "$name - TEST_NGINX_SERVER_ROOT");
is($ENV{TEST_NGINX_SERVER_PORT}, $port, "$name - TEST_NGINX_SERVER_PORT");
_EOC_

run_tests();

__DATA__

=== TEST 1: nginx.conf
--- main_config
    worker_rlimit_nofile 512;
--- post_main_config
    pcre_jit on;
--- config
    location = / {
        return 200 "root $server_name\n";
    }
--- init eval: $::conf_checks
--- request
GET /
--- response_body
root localhost



=== TEST 2: temp paths set by the test are not repeated; server_name
--- http_config
    client_body_temp_path $TEST_NGINX_SERVER_ROOT/my_body_temp;
--- config
    location = / {
        return 200 "$server_name\n";
    }
--- server_name: selftest.example
--- request
GET /
--- response_body
selftest.example
