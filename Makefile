# burstd: build, test, install. `make test` is the README's test command and what CI runs.
PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
# Where cargo puts its output (honours CARGO_TARGET_DIR).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: build test test-unit test-vm install uninstall bench

build:
	$(CARGO) build --release

# Everything: unit, property, fake-tree, real-kernel (cgroup v1 on this host, needs root) and
# the cgroup v2 + systemd VM end-to-end harness.
test: test-unit test-vm

test-unit:
	$(CARGO) test

test-vm: build
	bash tests/vm/run.sh --burstd $(TARGET_DIR)/release/burstd

bench:
	$(CARGO) bench

install: build
	install -D -m 0755 $(TARGET_DIR)/release/burstd $(DESTDIR)$(PREFIX)/bin/burstd
	install -D -m 0644 systemd/burstd.service $(DESTDIR)/etc/systemd/system/burstd.service
	@if [ -e $(DESTDIR)/etc/burstd/burstd.toml ]; then \
		echo "keeping existing $(DESTDIR)/etc/burstd/burstd.toml"; \
	else \
		install -D -m 0644 config/burstd.toml $(DESTDIR)/etc/burstd/burstd.toml; \
	fi
	@echo "now: edit /etc/burstd/burstd.toml, 'burstd check', then 'systemctl daemon-reload && systemctl enable --now burstd'"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/burstd $(DESTDIR)/etc/systemd/system/burstd.service
