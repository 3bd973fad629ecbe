# djamms: `make run` brings up a local instance, `make test` runs every test.
# Build outputs go to build/ (or build-asan/ with SAN=1); nothing else is
# written outside var/ and the temp dirs the tests make.

PREFIX	?= /usr/local
DESTDIR	?=
BINDIR	 = $(PREFIX)/bin
DATADIR	 = $(PREFIX)/share
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR	?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)

CC	?= cc
PKGS	 = json-c zlib libcurl libpq hiredis libjwt openssl libargon2 libmagic taglib_c \
	   libavformat libavcodec libavutil libswresample aubio libebur128 vips
CFLAGS	?= -O2 -g
CFLAGS	+= -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter \
	   -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	   -DDJAMMS_SQL_DIR_DEFAULT='"$(DATADIR)/djamms/sql"'
LDFLAGS	+= -pie -Wl,-z,relro,-z,now
LDLIBS	 = -lfcgi $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

ifeq ($(SAN),1)
B	 = build-asan
CFLAGS	+= -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined -U_FORTIFY_SOURCE
LDFLAGS	+= -fsanitize=address,undefined
else
B	 = build
endif

# Every .c of fcgi/ and handlers/ is the core, but main.c (the binary's
# entry point) so the unit tests can link the rest.
CORE_SRC = $(filter-out fcgi/main.c,$(sort $(wildcard fcgi/*.c handlers/*.c)))
CORE_OBJ = $(CORE_SRC:%.c=$(B)/%.o)
HDRS	 = $(wildcard fcgi/*.h)

.PHONY: all deps run catalog test test-unit test-integration test-sanitize bench \
	install uninstall clean
.DEFAULT_GOAL := all

all: $(B)/djamms $(B)/test_unit $(B)/test_integration $(B)/bare_responder $(B)/test_media

$(B)/%.o: %.c $(HDRS)
	@pkg-config --exists --print-errors $(PKGS) || \
	    { echo "missing libraries: run tools/deps" >&2; exit 1; }
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/djamms: $(CORE_OBJ) $(B)/fcgi/main.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/test_unit: $(CORE_OBJ) $(B)/tests/unit.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(B)/test_media: $(CORE_OBJ) $(B)/tests/unit_media.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(B)/test_integration: $(B)/tests/integration.o $(B)/tests/it_auth.o $(B)/tests/it_music.o \
	    $(B)/tests/it_library_cli.o $(B)/tests/it_playlists.o $(B)/tests/it_user.o $(B)/tests/it_search.o \
	    $(B)/tests/it_m3u.o $(B)/tests/it_scheduler.o $(B)/tests/it_settings.o $(B)/tests/it_ops.o $(B)/tests/it_jobs.o $(B)/tests/http.o
	$(CC) $(LDFLAGS) -o $@ $^ -lcurl -lpthread -lcrypto $(shell pkg-config --libs json-c)

$(B)/bare_responder: $(B)/tests/bench/bare_responder.o
	$(CC) $(LDFLAGS) -o $@ $^ -lfcgi

$(B)/tests/%.o: tests/%.c tests/http.h $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Installs Debian packages that are missing (needs root or sudo).
deps:
	@tools/deps

run: deps all
	@tools/run

# Loads a metadata catalogue (CSV=path; the shared test corpus by default)
# into the instance `make run` keeps in ./var, which must be running.
CSV	?= ../shared/data/tracks.csv
catalog: all
	@if [ ! -f var/stack.env ] || [ ! -f var/pg/postmaster.pid ]; then \
	    echo "catalog: no local instance is running in ./var; start it with make run" >&2; \
	    exit 1; fi
	@eval "$$(tools/stack env var)"; $(B)/djamms catalog "$(CSV)"

# Every test: unit and integration, then the same under ASan/UBSan.
test:
	@tools/deps --quiet
	@tests/run-all

test-unit: $(B)/test_unit
	$(B)/test_unit

test-integration: all
	@tests/run-all --only plain

test-sanitize:
	@tests/run-all --only asan

bench: all
	@tests/bench/run

install: $(B)/djamms
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/djamms/sql \
	    $(DESTDIR)$(DATADIR)/djamms/nginx/snippets $(DESTDIR)$(DATADIR)/doc/djamms \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/djamms \
	    $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
	install -m 0755 $(B)/djamms $(DESTDIR)$(BINDIR)/djamms
	install -m 0644 sql/*.sql $(DESTDIR)$(DATADIR)/djamms/sql/
	install -m 0644 nginx/*.in $(DESTDIR)$(DATADIR)/djamms/nginx/
	install -m 0644 nginx/snippets/*.conf $(DESTDIR)$(DATADIR)/djamms/nginx/snippets/
	install -m 0644 docs/openapi.yaml README.md $(DESTDIR)$(DATADIR)/doc/djamms/
	ln -sf djamms $(DESTDIR)$(BINDIR)/djamms-jobs
	for u in djamms.socket djamms.service djamms-migrate.service djamms-jobs.service \
	    djamms-jobs-hourly.service djamms-mail.service; do \
	    tools/render systemd/$$u.in BINDIR=$(BINDIR) SYSCONFDIR=$(SYSCONFDIR) \
	        DATADIR=$(DATADIR) > $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 0644 systemd/djamms-jobs-hourly.timer systemd/djamms-mail.timer \
	    $(DESTDIR)$(UNITDIR)/
	install -m 0644 systemd/djamms.tmpfiles.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/djamms.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/djamms/djamms.env || \
	    install -m 0640 systemd/djamms.env.example $(DESTDIR)$(SYSCONFDIR)/djamms/djamms.env

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/djamms $(DESTDIR)$(BINDIR)/djamms-jobs
	rm -rf $(DESTDIR)$(DATADIR)/djamms $(DESTDIR)$(DATADIR)/doc/djamms
	rm -f $(DESTDIR)$(UNITDIR)/djamms.socket $(DESTDIR)$(UNITDIR)/djamms.service \
	    $(DESTDIR)$(UNITDIR)/djamms-migrate.service $(DESTDIR)$(UNITDIR)/djamms-jobs.service \
	    $(DESTDIR)$(UNITDIR)/djamms-jobs-hourly.service $(DESTDIR)$(UNITDIR)/djamms-jobs-hourly.timer \
	    $(DESTDIR)$(UNITDIR)/djamms-mail.service $(DESTDIR)$(UNITDIR)/djamms-mail.timer
	rm -f $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/djamms.conf

clean:
	rm -rf build build-asan
