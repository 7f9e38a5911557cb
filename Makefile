# SPDX-License-Identifier: MIT
# vdpa-user: plain, Kbuild-free Makefile. Out-of-tree into $(BUILD).
#   make            build library, CLI, simulator, tests
#   make check      run every test (SANITIZE=1 for ASan+UBSan)
#   make help       all targets

# The version is written once, in include/vdpa-user/version.h.
vnum = $(shell sed -n 's/^.define VDPA_USER_VERSION_$(1)[[:space:]]\{1,\}\([0-9]\{1,\}\)$$/\1/p' \
	include/vdpa-user/version.h)
VERSION     := $(call vnum,MAJOR).$(call vnum,MINOR).$(call vnum,PATCH)
SOVERSION   := 0
# BUILD given (command line or environment) is used as it is; without it,
# SANITIZE=1 builds into build-san.
ifeq ($(origin BUILD),undefined)
BUILD_DEFAULT := 1
endif
BUILD       ?= build
PREFIX      ?= /usr/local
DESTDIR     ?=
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
CC          ?= cc
WERROR      ?= 1
V           ?= 0

ifeq ($(SANITIZE),1)
ifdef BUILD_DEFAULT
BUILD       := build-san
endif
SANFLAGS    := -fsanitize=address,undefined -fno-omit-frame-pointer \
	       -fno-sanitize-recover=undefined
endif
# libFuzzer builds (make fuzz): clang, instrumented library, fuzz/*.c
ifeq ($(SANITIZE),fuzz)
override BUILD := $(BUILD)-fuzz
SANFLAGS    := -fsanitize=fuzzer-no-link,address,undefined \
	       -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
FUZZ_SECONDS ?= 10
CHECK_FUZZ_SECONDS ?= 5

WARN    := -Wall -Wextra -Wmissing-prototypes -Wstrict-prototypes \
	   -Wno-unused-parameter -Wshadow -Wformat=2 -Wvla
ifeq ($(WERROR),1)
WARN    += -Werror
endif
OPT     ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Iinclude/uapi -Iinclude -Icommon
CFLAGS  += -std=gnu11 $(OPT) $(WARN) -fPIC -MMD -MP $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
# libmnl and libpci: where pkg-config says, else the default paths.
DEP_CFLAGS := $(shell pkg-config --cflags libmnl libpci 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs libmnl libpci 2>/dev/null)
CPPFLAGS += $(DEP_CFLAGS)
LIBS    := $(or $(DEP_LIBS),-lmnl -lpci) -lpthread -lm

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

COMMON_SRC := $(wildcard common/*.c)
LIB_SRC    := $(wildcard vdpa-user/lib/*.c)
CLI_SRC    := $(wildcard vdpa-user/cli/*.c vdpa-user/serve/*.c)
SIM_SRC    := $(filter-out sim-device/main.c,$(wildcard sim-device/*.c))
TEST_SRC   := $(wildcard tests/*.c)
TUTIL_SRC  := $(wildcard tests/util/*.c)
BENCH_SRC  := $(wildcard bench/*.c)
FUZZ_SRC   := $(wildcard fuzz/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ := $(call obj,$(COMMON_SRC))
LIB_OBJ    := $(call obj,$(LIB_SRC))
CLI_OBJ    := $(call obj,$(CLI_SRC))
SIM_OBJ    := $(call obj,$(SIM_SRC))
TUTIL_OBJ  := $(call obj,$(TUTIL_SRC))

SONAME   := libvdpa-user.so.$(SOVERSION)
LIB_SO   := $(BUILD)/libvdpa-user.so.$(VERSION)
LIB_A    := $(BUILD)/libvdpa-user.a
SIM_A    := $(BUILD)/libvdpasim.a
TUTIL_A  := $(BUILD)/libtestutil.a
CLI      := $(BUILD)/vdpa-user
SIM      := $(BUILD)/vdpa-sim
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
FUZZERS  := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
DEPS_OK  := $(BUILD)/.deps-ok

.PHONY: all check bench demo install uninstall clean help deps check-kernel \
	valgrind fuzz fuzz-run examples
.PHONY: check-qemu
MAN3_PAGES := $(wildcard docs/man/*.3)
MAN3_LINKS := $(BUILD)/man3/.links

all: $(DEPS_OK) $(LIB_SO) $(LIB_A) $(CLI) $(SIM) $(TESTS) $(BENCHES) \
	$(BUILD)/vdpa-user.pc $(MAN3_LINKS)

help:
	@echo 'Targets:'
	@echo '  all (default)  library, CLI ($(CLI)), simulator ($(SIM)), tests'
	@echo '  demo           live migration between two simulators under traffic'
	@echo '  examples       examples/*.c against the in-tree library ($(BUILD)/examples)'
	@echo '  check          run all tests (TAP); SANITIZE=1 for ASan+UBSan'
	@echo '  valgrind       integration tests under valgrind (leak check)'
	@echo '  bench          benchmarks; figures printed, nothing asserted'
	@echo '  fuzz           libFuzzer targets (clang), FUZZ_SECONDS=$(FUZZ_SECONDS) each'
	@echo '  check-kernel   the suite against Linux vhost-vdpa + vdpa_sim in a guest (KERNEL=6.1|6.12)'
	@echo '  check-qemu     QEMU 10 live migration through vdpa-user serve vs dpdk-testpmd (TAP)'
	@echo '  install        PREFIX=$(PREFIX) DESTDIR=$(DESTDIR): library, headers, pkg-config,'
	@echo '                 CLI, simulator, man pages (1 and 3), bash completion'
	@echo '  uninstall      the same PREFIX and DESTDIR'
	@echo '  deps           install missing Debian build dependencies (root)'
	@echo '  clean'
	@echo 'Variables: BUILD=dir (default build, build-san with SANITIZE=1) V=1'
	@echo '  SANITIZE=1 WERROR=0 CC=clang PREFIX LIBDIR INCLUDEDIR BINDIR MANDIR BASHCOMPDIR'
	@echo 'Version $(VERSION) (include/vdpa-user/version.h)'

# The build needs a C compiler that compiles and links a program with
# libmnl and libpci: probed, so any host that has them builds. When the
# probe fails as root on Debian, scripts/install-deps.sh installs the
# packages (elsewhere, or not root, it names them); `make deps` installs
# them explicitly.
DEPS_PROBE = printf '%s\n' '\#include <libmnl/libmnl.h>' '\#include <pci/pci.h>' \
	'int main(void) { struct pci_access *p = pci_alloc();' \
	'struct mnl_socket *n = mnl_socket_open(0); pci_cleanup(p);' \
	'return n != 0; }' | \
	$(CC) $(CPPFLAGS) -x c -o /dev/null - $(LDFLAGS) $(LIBS)

deps:
	$(Q)scripts/install-deps.sh build

$(DEPS_OK):
	$(Q)mkdir -p $(BUILD)
	$(Q)if ! { $(DEPS_PROBE); } >$(BUILD)/deps-probe.log 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			scripts/install-deps.sh build || exit 1; \
		elif command -v dpkg-query >/dev/null 2>&1; then \
			scripts/install-deps.sh build || exit 1; \
		fi; \
		if ! { $(DEPS_PROBE); } >$(BUILD)/deps-probe.log 2>&1; then \
			head -n 5 $(BUILD)/deps-probe.log | sed 's/^/  /' >&2; \
			echo "vdpa-user: '$(CC)' cannot compile and link a program with libmnl and libpci" >&2; \
			echo "  (the probe's output: $(BUILD)/deps-probe.log)." >&2; \
			echo "  Install a C compiler and the libmnl and libpci development files:" >&2; \
			echo "  Debian/Ubuntu: make deps as root (gcc make pkg-config libmnl-dev libpci-dev);" >&2; \
			echo "  Fedora: gcc make pkgconf libmnl-devel pciutils-devel; Arch: gcc make libmnl pciutils." >&2; \
			exit 1; \
		fi; \
	fi
	$(Q)touch $@

$(BUILD)/obj/%.o: %.c $(DEPS_OK)
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Library objects get hidden visibility; exports are marked VDPA_EXPORT.
$(LIB_OBJ) $(COMMON_OBJ): CPPFLAGS += -DVDPA_USER_BUILD -Ivdpa-user/lib
$(LIB_OBJ) $(COMMON_OBJ): CFLAGS += -fvisibility=hidden
$(CLI_OBJ): CPPFLAGS += -Ivdpa-user/lib -Ivdpa-user/cli -Isim-device
$(SIM_OBJ) $(BUILD)/obj/sim-device/main.o: CPPFLAGS += -Isim-device
$(TUTIL_OBJ) $(call obj,$(TEST_SRC) $(BENCH_SRC)): CPPFLAGS += -Isim-device \
	-Ivdpa-user/lib -Itests -Itests/util
$(call obj,$(FUZZ_SRC)): CPPFLAGS += -Ivdpa-user/lib

$(LIB_SO): $(LIB_OBJ) $(COMMON_OBJ) vdpa-user/libvdpa-user.map
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script,vdpa-user/libvdpa-user.map -Wl,-z,defs \
		$(LDFLAGS) -o $@ $(LIB_OBJ) $(COMMON_OBJ) $(LIBS)
	$(Q)ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(BUILD)/libvdpa-user.so

$(LIB_A): $(LIB_OBJ) $(COMMON_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SIM_A): $(SIM_OBJ) $(COMMON_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(TUTIL_A): $(TUTIL_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(CLI): $(CLI_OBJ) $(LIB_A) $(SIM_A)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB_A) $(SIM_A) $(LIBS)

$(SIM): $(BUILD)/obj/sim-device/main.o $(SIM_A)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIB_A) $(SIM_A) $(TUTIL_A)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(TUTIL_A) $(LIB_A) \
		$(SIM_A) $(LIBS)

# tests/stream tests the CLI's migration stream: it links that object too.
$(BUILD)/obj/tests/stream.o: CPPFLAGS += -Ivdpa-user/cli
$(BUILD)/tests/stream: $(BUILD)/obj/vdpa-user/cli/stream.o
# tests/relay tests serve's relay mode on its own: it links that object too.
$(BUILD)/obj/tests/relay.o: CPPFLAGS += -Ivdpa-user/serve
$(BUILD)/tests/relay: $(BUILD)/obj/vdpa-user/serve/relay.o
# bench/relay measures that relay against passthrough: links it as well.
$(BUILD)/obj/bench/relay.o: CPPFLAGS += -Ivdpa-user/serve
$(BUILD)/bench/relay: $(BUILD)/obj/bench/relay.o \
		$(BUILD)/obj/vdpa-user/serve/relay.o $(LIB_A) $(SIM_A) $(TUTIL_A)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(TUTIL_A) $(LIB_A) \
		$(SIM_A) $(LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB_A) $(SIM_A) $(TUTIL_A)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(TUTIL_A) $(LIB_A) $(SIM_A) $(LIBS)

$(BUILD)/fuzz/%: $(BUILD)/obj/fuzz/%.o $(LIB_A)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB_A) $(LIBS)

# The .pc for the PREFIX/LIBDIR/INCLUDEDIR of this make run; install
# writes it again, so a `make install PREFIX=...` after a plain `make` does
# not install a .pc pointing at the earlier prefix.
gen_pc = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	vdpa-user/vdpa-user.pc.in > $(1)

$(BUILD)/vdpa-user.pc: vdpa-user/vdpa-user.pc.in $(DEPS_OK)
	$(Q)$(call gen_pc,$@)

# man3: a page per public header (docs/man/*.3), and for each function named
# in a page's NAME section a page ".so man3/PAGE.3" of that name, so that
# `man vdpa_dev_open` finds it (tests/man-pages.sh: every exported function
# has one, with its prototype).
man3_names = sed -n '/^\.SH NAME/{n;s/ \\- .*//;s/[,\\]/ /g;p;q;}' $(1)
$(MAN3_LINKS): $(MAN3_PAGES)
	$(Q)rm -rf $(BUILD)/man3 && mkdir -p $(BUILD)/man3
	$(Q)for p in $(MAN3_PAGES); do \
		page=$$(basename $$p .3); \
		for n in $$($(call man3_names,$$p)); do \
			[ "$$n" = "$$page" ] || \
				echo ".so man3/$$page.3" >$(BUILD)/man3/$$n.3; \
		done; \
	done
	$(Q)touch $@

# The examples, built in-tree against the static library (make check
# builds examples/frontend-migrate.c against an installed copy instead:
# tests/frontend-example.sh).
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLES    := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))
examples: $(EXAMPLES)

$(EXAMPLES): $(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(LIB_A)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIBS)

# The parser fuzzers run a few seconds first (plain builds, when clang can
# link a libFuzzer program; check installs nothing for them, make fuzz
# does); the test runner's summary stays the last line.
# Scripts of the interface as a user meets it: headers from C++, man
# pages, CLI help and completion, make install.
CHECK_SCRIPTS := tests/cxx-headers.sh tests/man-pages.sh tests/cli-help.sh \
	tests/install.sh tests/conform.sh

check: all
ifneq ($(SANITIZE),1)
	$(Q)if printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }\n' | \
		clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory SANITIZE=fuzz CC=clang BUILD=$(BUILD) \
			FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS) fuzz-run; \
	else echo "# fuzz: skipped (clang with libFuzzer not installed: make fuzz installs it)"; fi
endif
	$(Q)BUILD=$(BUILD) scripts/run-tests.sh $(TESTS) tests/linkage.sh \
		tests/frontend-example.sh $(CHECK_SCRIPTS)

# Thread-mode tests (library and simulator in one process) and the CLI's
# demo (every migration path) under valgrind's leak checker.
VALGRIND_TESTS := $(filter %/sim-wire %/sim-badinput %/driver %/vq-ring %/net-class \
	%/state-blob %/transfer-fd %/precopy,$(TESTS))
valgrind: all
	$(Q)BUILD=$(BUILD) VALGRIND=1 scripts/run-tests.sh $(VALGRIND_TESTS)
	$(Q)valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 $(CLI) demo >/dev/null
	$(Q)SERVE_VALGRIND=1 BUILD=$(BUILD) $(BUILD)/tests/serve >/dev/null || \
		{ echo "tests/serve with vdpa-user serve under valgrind failed" >&2; exit 1; }

# Each fuzz/NAME.c runs FUZZ_SECONDS from the seeds in fuzz/corpus/NAME
# (new inputs go to a scratch corpus, not into the tree).
fuzz:
	$(Q)scripts/install-deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory SANITIZE=fuzz CC=clang BUILD=$(BUILD) fuzz-run

fuzz-run: $(DEPS_OK) $(FUZZERS)
	$(Q)for f in $(FUZZERS); do \
		n=$$(basename $$f); work=$(BUILD)/fuzz/$$n.corpus; \
		mkdir -p $$work; \
		echo "# fuzz $$n: $(FUZZ_SECONDS) s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$$work fuzz/corpus/$$n 2>$(BUILD)/fuzz/$$n.log || \
			{ tail -n 40 $(BUILD)/fuzz/$$n.log; exit 1; }; \
		grep -E 'stat::number_of_executed_runs|Done' $(BUILD)/fuzz/$$n.log; \
	done

bench: all
	$(Q)BUILD=$(BUILD) scripts/bench.sh

demo: all
	$(Q)$(CLI) demo

KERNEL ?= 6.1
check-kernel: all
	$(Q)BUILD=$(BUILD) KERNEL=$(KERNEL) scripts/vm/check-kernel.sh

check-qemu: all
	$(Q)BUILD=$(BUILD) scripts/qemu/check-qemu.sh

install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/vdpa-user \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(LIB_SO)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libvdpa-user.so
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/vdpa-user/*.h $(DESTDIR)$(INCLUDEDIR)/vdpa-user/
	$(call gen_pc,$(DESTDIR)$(LIBDIR)/pkgconfig/vdpa-user.pc)
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/vdpa-user.pc
	install -m 0755 $(CLI) $(SIM) $(DESTDIR)$(BINDIR)/
	install -m 0644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN3_PAGES) $(BUILD)/man3/*.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 completions/vdpa-user $(DESTDIR)$(BASHCOMPDIR)/vdpa-user
	ln -sf vdpa-user $(DESTDIR)$(BASHCOMPDIR)/vdpa-sim

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libvdpa-user.* $(DESTDIR)$(LIBDIR)/pkgconfig/vdpa-user.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/vdpa-user
	rm -f $(DESTDIR)$(BINDIR)/vdpa-user $(DESTDIR)$(BINDIR)/vdpa-sim
	rm -f $(DESTDIR)$(MANDIR)/man1/vdpa-user.1 $(DESTDIR)$(MANDIR)/man1/vdpa-sim.1
	for p in $(MAN3_PAGES); do \
		for n in $$(basename $$p .3) $$($(call man3_names,$$p)); do \
			rm -f $(DESTDIR)$(MANDIR)/man3/$$n.3; \
		done; \
	done
	rm -f $(DESTDIR)$(BASHCOMPDIR)/vdpa-user $(DESTDIR)$(BASHCOMPDIR)/vdpa-sim

clean:
	rm -rf $(BUILD) $(BUILD)-san $(BUILD)-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
