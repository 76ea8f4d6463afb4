# enroot-ts: build and install (doc/install.md).
#
#   make                                   npm ci (when needed), tsc, the native addon, the SPANK plugin
#   make install [DESTDIR=…] [prefix=…]    GNU directory variables; packages use prefix=/usr sysconfdir=/etc
#   make uninstall                         with the same variables as install
#
# `make install NOBUILD=1` installs what is already built (scripts/build-deb.sh --no-build, the tests) and
# never runs npm or tsc; only the SPANK plugin is compiled, because it carries the installed launcher path.

prefix      = /usr/local
exec_prefix = $(prefix)
bindir      = $(exec_prefix)/bin
libdir      = $(exec_prefix)/lib
sysconfdir  = $(prefix)/etc
datarootdir = $(prefix)/share
datadir     = $(datarootdir)
docdir      = $(datarootdir)/doc/enroot-ts
# The package itself (compiled launcher, production node_modules, native addon): LIBDIR of
# launcher/src/config/install-paths.ts, and ENROOT_LIBRARY_PATH's default, as enroot's $(libdir)/enroot.
pkglibdir   = $(libdir)/enroot
pkgdatadir  = $(datadir)/enroot
# Slurm needs only plugstack.conf's absolute path; this is where the plugin goes. Debian's Slurm keeps its
# plugins in /usr/lib/<multiarch>/slurm-wlm (scripts/build-deb.sh sets that).
slurmplugindir = $(libdir)/slurm
# The node that runs the CLI, as an absolute path: slurmstepd starts the launcher with the job's PATH,
# which need not contain node.
NODE       := $(shell command -v node)
DESTDIR    ?=

VERSION    := $(shell node -p 'require("./package.json").version' 2>/dev/null)
SPANK_BUILD = .build/spank
NATIVE      = native/build/Release/enroot_native.node
LAUNCHER    = $(bindir)/enroot

INSTALL      = install
INSTALL_DATA = $(INSTALL) -m 0644
INSTALL_EXEC = $(INSTALL) -m 0755

ifeq ($(NOBUILD),1)
BUILD_DEPS = check-built
else
BUILD_DEPS = build
endif

all: build

# The addon before the launcher: the build's training run (scripts/bundle.mjs) starts a container with it.
build: node_modules/.package-lock.json $(NATIVE) dist/cli.js spank-checkout
	node scripts/gen-completion.mjs --check

# As scripts/setup.sh: only a newer lockfile means the installed modules are stale (npm ci starts over).
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# tsc rewrites every output, so dist/cli.js stands for the whole tree; `npm run build` also checks that
# etc/enroot.conf matches the settings table.
dist/cli.js: $(shell find launcher/src -name '*.ts' -o -name '*.cts') scripts/bundle.mjs scripts/train-registry.mjs bin/enroot tsconfig.json tsconfig.build.json node_modules/.package-lock.json
	npm run --silent build
	touch $@

$(NATIVE): $(wildcard native/src/*) native/binding.gyp node_modules/.package-lock.json
	npm run --silent build:native >/dev/null

# The checkout's own plugin (spank/spank_enroot.so), which the tests load.
spank-checkout:
	$(MAKE) -s -C spank

# The plugin that gets installed is built in a copy of spank/: its default launcher is compiled in, so
# it depends on $(bindir), and the checkout's plugin (the tests') must not change under a `make install`.
spank-install:
	@mkdir -p $(SPANK_BUILD)
	cp -p spank/*.c spank/*.h spank/spank_enroot.lds spank/Makefile $(SPANK_BUILD)/
	@echo '$(LAUNCHER) $(VERSION)' | cmp -s - $(SPANK_BUILD)/stamp || { rm -f $(SPANK_BUILD)/spank_enroot.so; echo '$(LAUNCHER) $(VERSION)' > $(SPANK_BUILD)/stamp; }
	$(MAKE) -s -C $(SPANK_BUILD) spank_enroot.so LAUNCHER='$(LAUNCHER)' VERSION='$(VERSION)'

# Regenerates completion/enroot.bash after a change to a command's options or Usage line.
completion: dist/cli.js
	node scripts/gen-completion.mjs

check-built:
	@for f in dist/cli.js dist/enroot.cjs $(NATIVE) node_modules/.package-lock.json completion/enroot.bash; do \
	  [ -e "$$f" ] || { echo "make install NOBUILD=1: $$f is missing; run make first" >&2; exit 1; }; done

install: $(BUILD_DEPS) spank-install
	@[ -n "$(NODE)" ] || { echo 'make install: node is not on PATH; set NODE=/path/to/node' >&2; exit 1; }
# The launcher: compiled JavaScript, and package.json, which makes dist/ ES modules and marks the
# package root that runtime/native.ts looks for.
	rm -rf $(DESTDIR)$(pkglibdir)/dist $(DESTDIR)$(pkglibdir)/node_modules
	$(INSTALL) -d $(DESTDIR)$(pkglibdir)/bin $(DESTDIR)$(pkglibdir)/native/build/Release
	cp -R dist $(DESTDIR)$(pkglibdir)/dist
	$(INSTALL_DATA) package.json $(DESTDIR)$(pkglibdir)/package.json
	$(INSTALL_EXEC) bin/enroot $(DESTDIR)$(pkglibdir)/bin/enroot
	$(INSTALL_DATA) bin/package.json $(DESTDIR)$(pkglibdir)/bin/package.json
	$(INSTALL_EXEC) $(NATIVE) $(DESTDIR)$(pkglibdir)/native/build/Release/enroot_native.node
# The shell header of the self-extracting bundles `enroot bundle` writes (launcher/src/bundle/header.ts).
	$(INSTALL) -D -m 0644 launcher/src/bundle/header.sh $(DESTDIR)$(pkglibdir)/bundle/header.sh
# Production node_modules: what `npm ls --omit=dev` lists, copied from the checkout so that installing
# needs no registry. Each package is copied without its node_modules/; nested ones are listed too.
	@mkdir -p .build
	npm ls --omit=dev --all --parseable > .build/prod-modules
	tail -n +2 .build/prod-modules | while read -r p; do \
	  rel=$${p#$(CURDIR)/}; mkdir -p "$(DESTDIR)$(pkglibdir)/$$rel"; \
	  tar -C "$$p" --exclude=./node_modules -cf - . | tar -C "$(DESTDIR)$(pkglibdir)/$$rel" -xf - || exit 1; \
	done
# install-paths.ts: the installed configuration and library directories replace the checkout's.
	printf '{"sysconfdir": "%s", "libdir": "%s"}\n' '$(sysconfdir)/enroot' '$(pkglibdir)' > $(DESTDIR)$(pkglibdir)/install-paths.json
	chmod 0644 $(DESTDIR)$(pkglibdir)/install-paths.json
# The command: a wrapper with node's absolute path.
	$(INSTALL) -d $(DESTDIR)$(bindir)
	printf '#!/bin/sh\n# enroot-ts (installed by make install)\nexec %s %s/bin/enroot "$$@"\n' '$(NODE)' '$(pkglibdir)' > $(DESTDIR)$(bindir)/enroot
	chmod 0755 $(DESTDIR)$(bindir)/enroot
# System configuration. etc/{environ,mounts,hooks}.d are links to the top-level drop-in directories;
# install(1) copies the files they point to.
	$(INSTALL) -d $(DESTDIR)$(sysconfdir)/enroot/enroot.conf.d $(DESTDIR)$(sysconfdir)/enroot/environ.d \
	  $(DESTDIR)$(sysconfdir)/enroot/mounts.d $(DESTDIR)$(sysconfdir)/enroot/hooks.d
	sed -e 's|@sysconfdir@|$(sysconfdir)/enroot|g' -e 's|@libdir@|$(pkglibdir)|g' etc/enroot.conf > $(DESTDIR)$(sysconfdir)/enroot/enroot.conf
	chmod 0644 $(DESTDIR)$(sysconfdir)/enroot/enroot.conf
	$(INSTALL_DATA) etc/enroot.conf.d/README $(DESTDIR)$(sysconfdir)/enroot/enroot.conf.d/README
	$(INSTALL_DATA) environ.d/*.env $(DESTDIR)$(sysconfdir)/enroot/environ.d/
	$(INSTALL_DATA) mounts.d/*.fstab $(DESTDIR)$(sysconfdir)/enroot/mounts.d/
	$(INSTALL_EXEC) hooks.d/*.sh $(DESTDIR)$(sysconfdir)/enroot/hooks.d/
# Extra drop-ins, inactive until an administrator links them into $(sysconfdir)/enroot (as enroot).
	$(INSTALL) -d $(DESTDIR)$(pkgdatadir)/hooks.d
	$(INSTALL_EXEC) hooks.d/extra/*.sh $(DESTDIR)$(pkgdatadir)/hooks.d/
	if ls mounts.d/extra/*.fstab >/dev/null 2>&1; then $(INSTALL) -d $(DESTDIR)$(pkgdatadir)/mounts.d && \
	  $(INSTALL_DATA) mounts.d/extra/*.fstab $(DESTDIR)$(pkgdatadir)/mounts.d/; fi
# Slurm: the plugin, and the one plugstack line an administrator includes.
	$(INSTALL) -D -m 0755 $(SPANK_BUILD)/spank_enroot.so $(DESTDIR)$(slurmplugindir)/spank_enroot.so
	printf '# enroot-ts SPANK plugin (pyxis options for srun/sbatch/salloc). Keys: doc/slurm.md.\n# Include from plugstack.conf, or link into plugstack.conf.d/; every node needs the same line.\nrequired %s/spank_enroot.so\n' \
	  '$(slurmplugindir)' > $(DESTDIR)$(pkgdatadir)/spank_enroot.conf
	chmod 0644 $(DESTDIR)$(pkgdatadir)/spank_enroot.conf
	$(INSTALL) -D -m 0644 completion/enroot.bash $(DESTDIR)$(datadir)/bash-completion/completions/enroot
# Documentation
	$(INSTALL) -d $(DESTDIR)$(docdir)/cmd
	$(INSTALL_DATA) README.md etc/plugstack.conf.example $(DESTDIR)$(docdir)/
	$(INSTALL_DATA) doc/*.md $(DESTDIR)$(docdir)/
	$(INSTALL_DATA) doc/cmd/*.md $(DESTDIR)$(docdir)/cmd/

# Removes what install put there; directories only when empty, so an administrator's own drop-ins stay.
uninstall:
	rm -f $(DESTDIR)$(bindir)/enroot $(DESTDIR)$(slurmplugindir)/spank_enroot.so
	rm -rf $(DESTDIR)$(pkglibdir)
	rm -f $(DESTDIR)$(sysconfdir)/enroot/enroot.conf $(DESTDIR)$(sysconfdir)/enroot/enroot.conf.d/README
	for f in environ.d/*.env mounts.d/*.fstab hooks.d/*.sh; do rm -f "$(DESTDIR)$(sysconfdir)/enroot/$$f"; done
	for f in hooks.d/extra/*.sh; do rm -f "$(DESTDIR)$(pkgdatadir)/hooks.d/$${f##*/}"; done
	for f in mounts.d/extra/*.fstab; do rm -f "$(DESTDIR)$(pkgdatadir)/mounts.d/$${f##*/}"; done
	rm -f $(DESTDIR)$(pkgdatadir)/spank_enroot.conf $(DESTDIR)$(datadir)/bash-completion/completions/enroot
	rm -rf $(DESTDIR)$(docdir)
	-rmdir $(DESTDIR)$(sysconfdir)/enroot/enroot.conf.d $(DESTDIR)$(sysconfdir)/enroot/environ.d \
	  $(DESTDIR)$(sysconfdir)/enroot/mounts.d $(DESTDIR)$(sysconfdir)/enroot/hooks.d $(DESTDIR)$(sysconfdir)/enroot \
	  $(DESTDIR)$(pkgdatadir)/hooks.d $(DESTDIR)$(pkgdatadir)/mounts.d $(DESTDIR)$(pkgdatadir) 2>/dev/null

deb:
	bash scripts/build-deb.sh

clean:
	rm -rf .build
	$(MAKE) -s -C spank clean

.PHONY: all build spank-checkout spank-install completion check-built install uninstall deb clean
