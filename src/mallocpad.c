/*-------------------------------------------------------------------------
 *
 * mallocpad.c
 *		The free memory a backend that runs taskq keeps at the top of its
 *		heap (taskq.malloc_top_pad).
 *
 * A pull or an ack of 100 jobs allocates a few hundred kilobytes (the
 * statement's executor and SPI contexts, the slots and rows of the direct
 * writes, a unique check's slot per row) and frees them when the call and
 * its statement end.  With glibc's default padding (M_TOP_PAD, 128 kB)
 * the freed top of the heap goes back to the kernel after nearly every
 * such statement (brk), and the next statement asks for it again.  Each
 * shrink flushes the process's TLB on the CPUs it ran on (an IPI, costly
 * in a virtual machine), each growth faults the pages in again: 8 % of a
 * drain's samples were under brk in `perf`, about 2.5 calls per
 * statement.  So a backend, at its first taskq call, asks malloc to keep
 * this much free memory at the top of its heap: the heap then grows and
 * shrinks by at least that much, and a worker's loop stays within it.
 *
 * The cost is up to that much memory per backend that ran taskq's calls,
 * kept while it is idle.  0 at the first call asks nothing of malloc (a
 * MALLOC_TOP_PAD_ of the server's environment then stays in force, which
 * any other value overrides); 0 after a value was applied asks for
 * glibc's own padding again.  Setting the padding also stops glibc from
 * adjusting its mmap threshold by itself, for good (mallopt(3)):
 * allocations from 128 kB up are then mapped and unmapped one by one, as
 * before any adjustment.  Without glibc the setting does nothing.  Other
 * backends (those that never call taskq) keep malloc's defaults: the
 * setting applies where taskq runs, not to the server.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "fmgr.h"
#include "utils/guc.h"

#include "taskq.h"

/* glibc's own M_TOP_PAD (mallopt(3)), restored when the setting goes to 0 */
#define GLIBC_DEFAULT_TOP_PAD	(128 * 1024)

/* taskq.malloc_top_pad, in kB */
int			taskq_malloc_top_pad = 1024;

/* whether this backend applied the setting (its first taskq call) */
static bool malloc_tuned = false;

/* the padding this backend set with mallopt, in bytes (-1: none) */
static int64 malloc_padding = -1;

static void
apply_top_pad(int kb)
{
#ifdef __GLIBC__
	int64		bytes = kb > 0 ? (int64) kb * 1024 : GLIBC_DEFAULT_TOP_PAD;

	if (mallopt(M_TOP_PAD, (int) bytes) == 1)
		malloc_padding = bytes;
#endif
}

/*
 * A taskq call begins: at the first in this backend, apply the padding.
 */
void
TaskqTuneMalloc(void)
{
	if (malloc_tuned)
		return;
	malloc_tuned = true;
	if (taskq_malloc_top_pad > 0)
		apply_top_pad(taskq_malloc_top_pad);
}

/*
 * A new value, once the backend has applied one, applies at once (0: glibc's
 * own padding again).  Before the first taskq call nothing is applied.
 */
static void
assign_malloc_top_pad(int newval, void *extra)
{
	if (malloc_tuned && newval != taskq_malloc_top_pad)
		apply_top_pad(newval);
}

/*
 * taskq._malloc_padding() RETURNS bigint
 *
 * The padding this backend asked malloc to keep, in bytes: NULL before its
 * first taskq call, when the setting was 0 then, or without glibc.  For
 * tests of taskq.malloc_top_pad.
 */
PG_FUNCTION_INFO_V1(taskq_malloc_padding);
Datum
taskq_malloc_padding(PG_FUNCTION_ARGS)
{
	if (malloc_padding < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(malloc_padding);
}

/*
 * Define the setting; from _PG_init.
 */
void
TaskqMallocInit(void)
{
	DefineCustomIntVariable("taskq.malloc_top_pad",
							"Sets the free memory a backend that runs taskq keeps at the top of its heap.",
							"Applied at the backend's first taskq call and at each change after it (glibc's M_TOP_PAD); 0 at the first call leaves malloc as it is, 0 later restores glibc's own padding.",
							&taskq_malloc_top_pad,
							1024,
							0,
							1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, assign_malloc_top_pad, NULL);
}
