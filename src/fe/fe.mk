# src/fe/fe.mk -- the build of a taskq front-end program with PGXS: the
# command-line tool (src/cli) and the HTTP gateway (src/serve) each set
#
#   PROGRAM          the program's name
#   OBJS             its own objects
#   PROGRAM_HEADERS  its own headers (every object is rebuilt when one changes)
#   PROGRAM_LIBS     libraries of its own (optional)
#
# and then include this file, which adds the sources they share (src/fe),
# the flags and PGXS.  The program is installed into PostgreSQL's bindir,
# next to psql.
#
# The shared objects are built in the including program's own directory
# (vpath), so that the two programs never write the same object file.
#
# Warnings are defects: -Wall -Wextra here, CI adds -Werror through
# TASKQ_CFLAGS.  The three warnings turned off are the ones PostgreSQL's
# headers cannot be built with, as in the extension's own Makefile.

FE_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
OBJS += messages.o connect.o options.o json.o clock.o prepared.o
vpath %.c $(FE_DIR)

# the extension's version (taskq.control), which -V prints
TASKQ_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(FE_DIR)../../taskq.control)

# no LLVM bitcode: these are client programs, not server modules
# (override: Makefile.global sets with_llvm after this)
override with_llvm = no

# option_parse_int comes from libpgfeutils, which needs libpgcommon: it
# comes before libpq_pgport's -lpgcommon on the link line
PG_CPPFLAGS = -I$(FE_DIR) -DTASKQ_VERSION=\"$(TASKQ_VERSION)\" \
	-I$(libpq_srcdir) -I$(includedir_internal)
PG_LIBS = -L$(pkglibdir) -lpgfeutils $(libpq_pgport) $(PROGRAM_LIBS)
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers $(TASKQ_CFLAGS)

# Debian ships one pg_config per major version; prefer PostgreSQL 15's.
PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && \
	echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Makefile.global's LIBS names every library the server was built with
# (selinux, zstd, lz4, pam, gssapi...), whose development files need not be
# installed; a libpq client needs none of them.
LIBS = -lm

# PGXS tracks no header dependencies
$(OBJS): $(PROGRAM_HEADERS) $(FE_DIR)fe.h
