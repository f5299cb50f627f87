package Test::Nginx::Socket;

# A lite stand-in for openresty's Test::Nginx::Socket (0.33), for machines
# where the real one (from CPAN) is not installed: the same test files,
# run the same way (prove -I util/test-nginx/lib t/), with the same
# meaning.  Like the real one it is a Test::Base subclass: the blocks,
# sections and filters are Test::Base's.  The work is done by
# Test::Nginx::Lite; see util/test-nginx/README.md.

use Test::Base -Base;

use Test::Nginx::Lite qw(:all);

our $VERSION = '0.33';

# tells this runner from the real one
our $Lite = 1;

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location use_hup
    server_name server_addr server_root html_dir server_port
    server_port_for_client timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_cleanup_handler
    add_response_body_check
);

1;
