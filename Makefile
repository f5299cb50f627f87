# Makefile - the project's commands; the work is done by util/*.sh
#
#   make build    build build/ngx_http_saveitem_module.so (util/build.sh)
#   make test     build, start a throwaway PostgreSQL, run t/ (util/test.sh);
#                 make test T="t/000-sanity.t" runs some files only
#   make run      build and run nginx with conf/nginx.conf (util/run.sh)
#   make clean    remove the build and the test server root

T ?=

.PHONY: all build test run deps clean

all: build

build:
	bash util/deps.sh build
	bash util/build.sh

test:
	bash util/test.sh $(T)

run:
	bash util/run.sh

deps:
	bash util/deps.sh test

clean:
	rm -rf build t/servroot t/servroot_*
