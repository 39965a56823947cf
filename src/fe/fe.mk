# src/fe/fe.mk -- the front-end sources that taskq's programs share,
# compiled into each program (included by src/cli/Makefile and
# src/serve/Makefile before PGXS).
#
# The objects are built in the including program's own directory (vpath),
# so that the two programs never write the same object file.

FE_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
FE_OBJS = messages.o connect.o options.o json.o clock.o

vpath %.c $(FE_DIR)

# option_parse_int comes from libpgfeutils, which needs libpgcommon
# (PG_LIBS comes before the -lpgcommon of libpq_pgport on the link line)
FE_CPPFLAGS = -I$(FE_DIR)
FE_LIBS = -L$(pkglibdir) -lpgfeutils
