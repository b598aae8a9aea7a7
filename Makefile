# agentgate: one Makefile for the kernel programs, the daemon, the CLI, the
# tests and the benchmarks.  Everything built goes to $(BUILD); nothing
# generated is committed except vmlinux.h.

BUILD ?= build
AG_VERSION := 0.16.0
CC ?= cc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

PKGS := libbpf libxdp liburing jansson libcrypto libssl hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
	-Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
	$(WARN) -I$(BUILD) -Ibpf -Ilib $(PKG_CFLAGS) -DAG_VERSION=\"$(AG_VERSION)\"
LDLIBS += $(PKG_LIBS) -lelf -lz -lm
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I. -Ibpf -Wall -Werror

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
LIB := $(BUILD)/libagentgate.a
DAEMON_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard daemon/*.c))
CLI_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))
# agent_probe is a program of its own that tests start as an agent.
TEST_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out selftests/agent_probe.c,$(wildcard selftests/*.c)))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

# Fuzz harnesses: each selftests/fuzz/fuzz_*.c defines LLVMFuzzerTestOneInput.
# make test links each with replay.c and replays its seeds in selftests/fuzz/corpus/;
# make fuzz links them with libFuzzer + ASan + UBSan for real fuzzing.
FUZZ_SRCS := $(wildcard selftests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst selftests/fuzz/%.c,$(BUILD)/fuzz/%-replay,$(FUZZ_SRCS))
FUZZ_BINS := $(patsubst selftests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

BINS := $(BUILD)/agentgated $(BUILD)/agentgatectl

# Keep BPF objects and skeletons: make would delete them as intermediates.
.SECONDARY: $(BPF_OBJS) $(SKELS) $(patsubst %.c,$(BUILD)/%.o,$(FUZZ_SRCS) selftests/fuzz/replay.c)

.PHONY: all deps test test-bins run bench fuzz install deb clean format vmlinux
all: $(BINS)

# test, run and bench install what is missing first, then build in a sub-make
# so that pkg-config sees the freshly installed libraries.
SUBMAKE = $(MAKE) --no-print-directory

deps:
	@scripts/deps.sh

# Every compile writes its header dependencies (-MMD) with a phony target per
# header (-MP), so a changed header rebuilds what includes it and a removed
# one does not break the build.
DEPFLAGS = -MMD -MP -MF $@.d
DEPS = $(wildcard $(BUILD)/*.d $(BUILD)/*/*.d $(BUILD)/*/*/*.d)
-include $(DEPS)

$(BUILD)/%.bpf.o: bpf/%.bpf.c vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst .bpf.o,,$(notdir $<))_bpf > $@.tmp && mv $@.tmp $@

# The skeletons are generated headers: they must exist before the first
# compile; after that the dependency files name the ones each object uses.
$(BUILD)/%.o: %.c | $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(AR) rcs $@ $^

$(BUILD)/agentgated: $(DAEMON_OBJS) $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/agentgatectl: $(CLI_OBJS) $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_progs: $(TEST_OBJS) $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/agent_probe: selftests/agent_probe.c
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $<

# An LD_PRELOAD shim the durability tests put into agentgated.  It defines
# pwrite and pwrite64 both, which _FILE_OFFSET_BITS=64 would make one symbol.
$(BUILD)/audit_slow.so: selftests/shim/audit_slow.c
	$(CC) $(filter-out -D_FILE_OFFSET_BITS=64,$(CFLAGS)) -shared -fPIC $(DEPFLAGS) -o $@ $< -ldl

$(BUILD)/bench/%: bench/%.c $(LIB) | $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/fuzz/%-replay: $(BUILD)/selftests/fuzz/%.o $(BUILD)/selftests/fuzz/replay.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
$(BUILD)/fuzz/%: selftests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -std=c11 -D_GNU_SOURCE -I$(BUILD) -Ibpf -Ilib $(PKG_CFLAGS) \
		-DAG_VERSION=\"$(AG_VERSION)\" -o $@ $^ $(LDLIBS)

$(BUILD):
	@mkdir -p $(BUILD)

test-bins: $(BINS) $(BUILD)/test_progs $(BUILD)/agent_probe $(BUILD)/audit_slow.so \
	   $(FUZZ_REPLAY) $(BENCH_BINS)

# Tests run as root: the kernel suite attaches real programs.
test:
	@scripts/deps.sh test
	@$(SUBMAKE) test-bins
	@scripts/test.sh

# The demo (scripts/demo.sh).  The build's output goes to a log: one line
# while it runs, the log's tail if it fails.
RUN_LOG = $(BUILD)/make-run.log
run:
	@scripts/deps.sh
	@mkdir -p $(BUILD)
	@echo "building agentgate (log: $(RUN_LOG))..."
	@if ! $(SUBMAKE) all >$(RUN_LOG) 2>&1; then \
		tail -n 30 $(RUN_LOG) >&2; \
		echo "make run: the build failed; the whole log is $(RUN_LOG)" >&2; \
		exit 1; \
	fi
	@BUILD=$(BUILD) scripts/demo.sh

bench:
	@scripts/deps.sh
	@$(SUBMAKE) all $(BENCH_BINS)
	@bench/run.sh

fuzz: $(FUZZ_BINS)

# make install: binaries, man pages, the service unit and, when absent, the
# default configuration (an operator's files are never overwritten).
# make deb: the same tree as a Debian package (scripts/mkdeb.sh).
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
# Packages put units in /lib/systemd/system; an administrator's go to /etc.
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,/etc/systemd/system)

install: all
	install -D -m 0755 $(BUILD)/agentgated $(DESTDIR)$(SBINDIR)/agentgated
	install -D -m 0755 $(BUILD)/agentgatectl $(DESTDIR)$(SBINDIR)/agentgatectl
	install -D -m 0644 docs/agentgated.8 $(DESTDIR)$(MANDIR)/man8/agentgated.8
	install -D -m 0644 docs/agentgatectl.8 $(DESTDIR)$(MANDIR)/man8/agentgatectl.8
	install -D -m 0644 docs/agentgate.conf.5 $(DESTDIR)$(MANDIR)/man5/agentgate.conf.5
	install -D -m 0644 docs/agentgate-policy.5 $(DESTDIR)$(MANDIR)/man5/agentgate-policy.5
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|g' packaging/agentgated.service.in \
		> $(DESTDIR)$(UNITDIR)/agentgated.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/agentgated.service
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/agentgate/policies
	test -e $(DESTDIR)$(SYSCONFDIR)/agentgate/agentgate.json || \
		install -m 0644 packaging/agentgate.json $(DESTDIR)$(SYSCONFDIR)/agentgate/agentgate.json
	test -e $(DESTDIR)$(SYSCONFDIR)/agentgate/policies/README || \
		install -m 0644 packaging/policies/README $(DESTDIR)$(SYSCONFDIR)/agentgate/policies/README

deb: all
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(BUILD)/deb/root) PREFIX=/usr \
		SYSCONFDIR=/etc BUILD=$(BUILD)
	scripts/mkdeb.sh $(BUILD)/deb $(AG_VERSION) $(BUILD)

# vmlinux.h is committed; regenerate only when moving to a new kernel.
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h

format:
	clang-format -i $(filter-out %.skel.h,$(wildcard bpf/*.[ch] lib/*.[ch] daemon/*.[ch] cli/*.[ch] selftests/*.[ch] selftests/fuzz/*.c bench/*.c))

clean:
	rm -rf $(BUILD)
