# Makefile - the project's commands; the work is done by util/*.sh
#
#   make build    build build/ngx_http_saveitem_module.so (util/build.sh)
#   make test     build, start a throwaway PostgreSQL, run t/ (util/test.sh);
#                 make test T="t/000-sanity.t" runs some files only
#   make run      build and run nginx with conf/nginx.conf (util/run.sh)
#   make bench    the benchmark: module vs Python peers vs pgbench, a table
#                 and a plot in bench/out/ (bench/run); options in ARGS,
#                 e.g. make bench ARGS=--quick, make bench ARGS=--soak
#   make clean    remove the build and the test server root

T ?=
ARGS ?=

.PHONY: all build test run bench deps clean

all: build

build:
	bash util/deps.sh build
	bash util/build.sh

test:
	bash util/test.sh $(T)

run:
	bash util/run.sh

bench:
	bash bench/run $(ARGS)

deps:
	bash util/deps.sh test

clean:
	rm -rf build t/servroot t/servroot_*
