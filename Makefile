# Makefile - the project's commands; the work is done by util/*.sh, which
# also run without make (bash util/test-all.sh, bash util/run.sh: the README)
#
#   make build    build build/ngx_http_saveitem_module.so (util/build.sh)
#   make test     the whole test suite, as CI runs it (util/test-all.sh): t/
#                 with group commit on and off, t/ under ASan and under
#                 valgrind, the fault runs, the randomized fault campaign
#                 (util/fault/campaign --quick), the fuzzers, the Debian
#                 package;
#                 make test PARTS="suite faults" runs some parts only
#   make check    build, start a throwaway PostgreSQL, run t/ (util/test.sh);
#                 make check T="t/000-sanity.t" runs some files only
#   make run      build and run nginx with conf/nginx.conf (util/run.sh)
#   make bench    the benchmark: module vs Python peers vs pgbench, a table
#                 and a plot in bench/out/ (bench/run); options in ARGS,
#                 e.g. make bench ARGS=--quick, make bench ARGS=--soak
#   make clean    remove the build and the test server root

T ?=
PARTS ?=
ARGS ?=

.PHONY: all build test check run bench deps clean

all: build

build:
	bash util/deps.sh build
	bash util/build.sh

test:
	bash util/test-all.sh $(PARTS)

check:
	bash util/test.sh $(T)

run:
	bash util/run.sh

bench:
	bash bench/run $(ARGS)

deps:
	bash util/deps.sh test

clean:
	rm -rf build t/servroot t/servroot_*
