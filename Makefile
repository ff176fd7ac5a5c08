# ngx_http_callhq_module
#
#   make            build build/ngx_http_callhq_module.so against the
#                   installed nginx (Debian's nginx-dev)
#   make run        PostgreSQL + mock model + nginx with the module
#   make test       the whole test suite (nginx suites, then clients)
#   make test-clients    TypeScript client and browser widget tests only
#   make test-valgrind   the suite with nginx under valgrind
#   make bench      benchmarks (bench/)
#   make bench-pg   PostgreSQL's instructions per chat under callgrind,
#                   module vs. earlier commits vs. floor C (bench/pg-cost.sh)
#   make fuzz       libFuzzer + ASan/UBSan on the JSON scanner, the query-
#                   string parser and the SSE framer, each fuzzer
#                   FUZZ_SECONDS (60) long; fails on a crash (t/fuzz/)
#   make migrate PG="conninfo"   apply sql/ migrations to a database
#   make api-key PG="conninfo" ORG=name   create an org and print a key
#   make deb        the Debian package libnginx-mod-http-callhq_*.deb
#                   (debian/, dpkg-buildpackage, lintian) in build/deb/
#   make test-deb   that package installed with apt-get in a fresh
#                   debootstrapped Debian 12, and a chat through its nginx

SHELL   := /bin/bash
NGX_SRC ?= /usr/share/nginx/src
BUILD   := $(CURDIR)/build
MODULE  := $(BUILD)/ngx_http_callhq_module.so
SRCS    := $(wildcard ngx_http_callhq_module/*.c ngx_http_callhq_module/*.h)

.PHONY: all deps run test test-clients test-valgrind bench fuzz fuzz-deps \
        bench-pg migrate api-key deb test-deb clean

all: $(MODULE)

deps:
	@scripts/deps.sh build

# configure once with Debian's exact flags, or nginx refuses the module
# as "not binary compatible"
$(BUILD)/Makefile: config | deps
	@mkdir -p $(BUILD)
	cd $(NGX_SRC) && . ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS) $(EXTRA_CFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC $(EXTRA_LDFLAGS)" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(BUILD) > $(BUILD)/configure.log

$(MODULE): $(BUILD)/Makefile $(SRCS)
	$(MAKE) -s -f $(BUILD)/Makefile -C $(NGX_SRC) modules

run: all
	@scripts/deps.sh run
	@scripts/run.sh

test: all
	@scripts/deps.sh test clients
	@scripts/test.sh
	@scripts/test-clients.sh

# the TypeScript client and the web widget in headless Chromium
test-clients: all
	@scripts/deps.sh clients
	@scripts/test-clients.sh

test-valgrind: all
	@scripts/deps.sh test valgrind
	@CALLHQ_VALGRIND=1 scripts/test.sh

bench: all
	@scripts/deps.sh bench
	@bench/run.sh

# PostgreSQL's instructions per chat (callgrind): module, before, floor C
bench-pg: all
	@scripts/deps.sh bench valgrind
	@bench/pg-cost.sh

# the JSON scanner, the query-string parser and the SSE framer compiled
# on their own against nginx's headers and the configured
# build/ngx_auto_config.h, one fuzzer binary per target
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BIN     := $(BUILD)/fuzz
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -Wall -Wextra -Wno-unused-parameter -Werror \
                -I$(NGX_SRC)/src/core -I$(NGX_SRC)/src/event \
                -I$(NGX_SRC)/src/event/modules -I$(NGX_SRC)/src/os/unix \
                -I$(NGX_SRC)/src/http -I$(NGX_SRC)/src/http/modules \
                -I$(NGX_SRC)/src/http/v2 -I$(BUILD) -Ingx_http_callhq_module \
                -I/usr/include/postgresql
FUZZ_SRCS    := ngx_http_callhq_module/ngx_http_callhq_json_scan.c \
                t/fuzz/fuzz_stubs.c
FUZZERS      := $(FUZZ_BIN)/fuzz_scan $(FUZZ_BIN)/fuzz_jansson \
                $(FUZZ_BIN)/fuzz_args $(FUZZ_BIN)/fuzz_sse

fuzz: $(FUZZERS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) t/fuzz/run.sh $(FUZZERS)

fuzz-deps:
	@scripts/deps.sh fuzz

$(FUZZ_BIN)/%: t/fuzz/%.c t/fuzz/fuzz_paths.h $(FUZZ_SRCS) \
        ngx_http_callhq_module/ngx_http_callhq_json.h \
        | $(BUILD)/Makefile fuzz-deps
	@mkdir -p $(FUZZ_BIN)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS) -ljansson

$(FUZZ_BIN)/fuzz_args: t/fuzz/fuzz_args.c t/fuzz/fuzz_pool.c t/fuzz/fuzz_pool.h \
        ngx_http_callhq_module/ngx_http_callhq_args.c \
        ngx_http_callhq_module/ngx_http_callhq_args.h \
        | $(BUILD)/Makefile fuzz-deps
	@mkdir -p $(FUZZ_BIN)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< t/fuzz/fuzz_pool.c \
	    ngx_http_callhq_module/ngx_http_callhq_args.c -ljansson

# fuzz_sse.c includes ngx_http_callhq_filter.c itself (its framer is static)
$(FUZZ_BIN)/fuzz_sse: t/fuzz/fuzz_sse.c t/fuzz/fuzz_pool.c t/fuzz/fuzz_pool.h \
        ngx_http_callhq_module/ngx_http_callhq_filter.c $(SRCS) $(FUZZ_SRCS) \
        | $(BUILD)/Makefile fuzz-deps
	@mkdir -p $(FUZZ_BIN)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< t/fuzz/fuzz_pool.c $(FUZZ_SRCS) \
	    -ljansson

migrate:
	@test -n "$(PG)" || { echo 'usage: make migrate PG="conninfo"'; exit 2; }
	@sql/migrate.sh "$(PG)"

api-key:
	@test -n "$(PG)" -a -n "$(ORG)" || { echo 'usage: make api-key PG="conninfo" ORG=name'; exit 2; }
	@scripts/api-key.sh "$(PG)" "$(ORG)"

deb:
	@scripts/deps.sh deb
	@scripts/deb.sh

test-deb: deb
	@scripts/deps.sh test-deb
	@scripts/test-deb.sh

clean:
	rm -rf $(BUILD) t/servroot* clients/typescript/node_modules \
	    clients/typescript/dist clients/typescript/build \
	    clients/browser-test/node_modules clients/test-output
