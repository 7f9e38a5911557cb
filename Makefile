# SPDX-License-Identifier: MIT
# vdpa-user: plain, Kbuild-free Makefile. Out-of-tree into $(BUILD).
#   make            build library, CLI, simulator, tests
#   make check      run every test (SANITIZE=1 for ASan+UBSan)
#   make help       all targets

VERSION     := 0.1.0
SOVERSION   := 0
BUILD       ?= build
PREFIX      ?= /usr/local
DESTDIR     ?=
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
CC          ?= cc
WERROR      ?= 1
V           ?= 0

ifeq ($(SANITIZE),1)
override BUILD := $(BUILD)-san
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
LIBS    := -lmnl -lpci -lpthread -lm

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

COMMON_SRC := $(wildcard common/*.c)
LIB_SRC    := $(wildcard vdpa-user/lib/*.c)
CLI_SRC    := $(wildcard vdpa-user/cli/*.c)
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
all: $(DEPS_OK) $(LIB_SO) $(LIB_A) $(CLI) $(SIM) $(TESTS) $(BENCHES) \
	$(BUILD)/vdpa-user.pc

help:
	@echo 'Targets:'
	@echo '  all (default)  library, CLI ($(CLI)), simulator ($(SIM)), tests'
	@echo '  demo           live migration between two simulators under traffic'
	@echo '  examples       examples/*.c against the in-tree library ($(BUILD)/examples)'
	@echo '  check          run all tests (TAP); SANITIZE=1 for ASan+UBSan'
	@echo '  valgrind       integration tests under valgrind (leak check)'
	@echo '  bench          benchmarks; figures printed, nothing asserted'
	@echo '  fuzz           libFuzzer targets (clang), FUZZ_SECONDS=$(FUZZ_SECONDS) each'
	@echo '  check-kernel   the suite against Linux vhost-vdpa + vdpa_sim in a guest'
	@echo '  install        PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)'
	@echo '  deps           install missing Debian build dependencies (root)'
	@echo '  clean'
	@echo 'Variables: BUILD=dir V=1 SANITIZE=1 WERROR=0 CC=clang'

deps $(DEPS_OK):
	$(Q)scripts/install-deps.sh build
	$(Q)mkdir -p $(BUILD) && touch $(DEPS_OK)

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
check: all
ifneq ($(SANITIZE),1)
	$(Q)if printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }\n' | \
		clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory SANITIZE=fuzz CC=clang BUILD=$(BUILD) \
			FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS) fuzz-run; \
	else echo "# fuzz: skipped (clang with libFuzzer not installed: make fuzz installs it)"; fi
endif
	$(Q)BUILD=$(BUILD) scripts/run-tests.sh $(TESTS) tests/linkage.sh \
		tests/frontend-example.sh

# Thread-mode tests (library and simulator in one process) and the CLI's
# demo (every migration path) under valgrind's leak checker.
VALGRIND_TESTS := $(filter %/sim-wire %/sim-badinput %/driver %/vq-ring %/net-class \
	%/state-blob %/transfer-fd,$(TESTS))
valgrind: all
	$(Q)BUILD=$(BUILD) VALGRIND=1 scripts/run-tests.sh $(VALGRIND_TESTS)
	$(Q)valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 $(CLI) demo >/dev/null

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

check-kernel: all
	$(Q)BUILD=$(BUILD) scripts/vm/check-kernel.sh

install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/vdpa-user \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(LIB_SO)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libvdpa-user.so
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/vdpa-user/*.h $(DESTDIR)$(INCLUDEDIR)/vdpa-user/
	$(call gen_pc,$(DESTDIR)$(LIBDIR)/pkgconfig/vdpa-user.pc)
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/vdpa-user.pc
	install -m 0755 $(CLI) $(SIM) $(DESTDIR)$(BINDIR)/
	install -m 0644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libvdpa-user.* $(DESTDIR)$(LIBDIR)/pkgconfig/vdpa-user.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/vdpa-user
	rm -f $(DESTDIR)$(BINDIR)/vdpa-user $(DESTDIR)$(BINDIR)/vdpa-sim
	rm -f $(DESTDIR)$(MANDIR)/man1/vdpa-user.1 $(DESTDIR)$(MANDIR)/man1/vdpa-sim.1

clean:
	rm -rf $(BUILD) $(BUILD)-san $(BUILD)-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
