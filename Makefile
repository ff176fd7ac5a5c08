# ngx_http_callhq_module
#
#   make            build build/ngx_http_callhq_module.so against the
#                   installed nginx (Debian's nginx-dev)
#   make run        PostgreSQL + mock model + nginx with the module
#   make test       the whole test suite (nginx suites, then clients)
#   make test-clients    TypeScript client and browser widget tests only
#   make test-valgrind   the suite with nginx under valgrind
#   make bench      benchmarks (bench/)
#   make migrate PG="conninfo"   apply sql/ migrations to a database
#   make api-key PG="conninfo" ORG=name   create an org and print a key

SHELL   := /bin/bash
NGX_SRC ?= /usr/share/nginx/src
BUILD   := $(CURDIR)/build
MODULE  := $(BUILD)/ngx_http_callhq_module.so
SRCS    := $(wildcard ngx_http_callhq_module/*.c ngx_http_callhq_module/*.h)

.PHONY: all deps run test test-clients test-valgrind bench migrate api-key \
        clean

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

migrate:
	@test -n "$(PG)" || { echo 'usage: make migrate PG="conninfo"'; exit 2; }
	@sql/migrate.sh "$(PG)"

api-key:
	@test -n "$(PG)" || { echo 'usage: make api-key PG="conninfo" ORG=name'; exit 2; }
	@scripts/api-key.sh "$(PG)" "$(ORG)"

clean:
	rm -rf $(BUILD) t/servroot* clients/typescript/node_modules \
	    clients/typescript/dist clients/typescript/build \
	    clients/browser-test/node_modules clients/test-output
