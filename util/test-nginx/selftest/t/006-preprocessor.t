# Self-test of the lite Test::Nginx::Socket: add_block_preprocessor with a
# section of the test file's own, check_accum_error_log.

use Test::Nginx::Socket 'no_plan';

repeat_each(2);
check_accum_error_log();
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location = /t {
        return 200 "default $arg_a\n";
    }
_EOC_
    }

    if (defined $block->expected_word) {
        $block->set_value('response_body',
                          "default " . $block->expected_word . "\n");
    }
});

run_tests();

__DATA__

=== TEST 1: default config, own section
--- request
GET /t?a=3
--- expected_word: 3



=== TEST 2: accumulated error log: every round sees all the lines
--- config
    location /missing {
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request
GET /missing/x
--- error_code: 404
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out eval
["open() \"$ENV{TEST_NGINX_SERVER_ROOT}/html/missing/x\" failed\n",
 "open() \"$ENV{TEST_NGINX_SERVER_ROOT}/html/missing/x\" failed\n" x 2]
