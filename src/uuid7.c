/*-------------------------------------------------------------------------
 *
 * uuid7.c
 *		UUID version 7 job ids (RFC 9562), generated in C.
 *
 * Layout: 48 bits of Unix time in milliseconds, the version (7), 12 bits
 * of sub-millisecond time (RFC 9562, section 6.2, method 3), the variant,
 * then 62 random bits.  Within one backend the ids strictly increase even
 * when the clock stands still or steps back: the 60-bit time stamp is
 * advanced past the last one handed out.  So ids sort by creation time,
 * which is what makes "FIFO by id" a meaningful delivery order.
 *
 * With taskq.shard_id set (a shard behind a taskq_router database), the
 * first byte after the variant is that shard's number instead of random
 * bits, so that the router finds a job's shard from its id alone (54
 * random bits remain).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "taskq.h"

/* 60-bit timestamp (ms << 12 | sub-ms fraction) of the last id made here */
static uint64 last_stamp = 0;

/*
 * Random bytes for the ids and lease tokens, drawn from pg_strong_random a
 * few hundred at a time: each call costs a getpid() system call and the
 * OpenSSL generator's set-up, which was a twentieth of a push_batch (and
 * gen_random_uuid() makes one call per lease).  Refilled after a fork
 * (a process never hands out bytes drawn by its parent).
 */
#define RANDOM_POOL		512
static uint8 random_pool[RANDOM_POOL];
static int	random_used = RANDOM_POOL;
static int	random_pid = 0;

/* n (at most RANDOM_POOL) bytes from the pool */
static void
random_bytes(uint8 *dst, int n)
{
	if (random_used > RANDOM_POOL - n || random_pid != MyProcPid)
	{
		if (!pg_strong_random(random_pool, RANDOM_POOL))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		random_used = 0;
		random_pid = MyProcPid;
	}
	memcpy(dst, random_pool + random_used, n);
	random_used += n;
}

/* taskq.shard_id: stamped into every job id (-1: none) */
int			taskq_shard_id = -1;

/*
 * Fill *uuid with a fresh, time-ordered version 7 UUID.
 */
void
TaskqUuid7(pg_uuid_t *uuid)
{
	struct timespec ts;
	uint64		ms;
	uint64		frac;
	uint64		stamp;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64) ts.tv_sec * 1000 + (uint64) ts.tv_nsec / 1000000;
	frac = ((uint64) (ts.tv_nsec % 1000000) * 4096) / 1000000;
	stamp = (ms << 12) | frac;
	if (stamp <= last_stamp)
		stamp = last_stamp + 1;
	last_stamp = stamp;

	/* bytes 8 to 15 are random; 0 to 7 are the time stamp and version */
	random_bytes(uuid->data + 8, 8);

	ms = stamp >> 12;
	frac = stamp & 0xFFF;
	uuid->data[0] = (unsigned char) (ms >> 40);
	uuid->data[1] = (unsigned char) (ms >> 32);
	uuid->data[2] = (unsigned char) (ms >> 24);
	uuid->data[3] = (unsigned char) (ms >> 16);
	uuid->data[4] = (unsigned char) (ms >> 8);
	uuid->data[5] = (unsigned char) ms;
	uuid->data[6] = (unsigned char) (0x70 | (frac >> 8));
	uuid->data[7] = (unsigned char) (frac & 0xFF);
	uuid->data[8] = (unsigned char) (0x80 | (uuid->data[8] & 0x3F));
	/* the shard that made it, for a router to send its calls back there */
	if (taskq_shard_id >= 0)
		uuid->data[9] = (unsigned char) taskq_shard_id;
}

/*
 * Define taskq.shard_id; from _PG_init.
 */
void
TaskqUuidInit(void)
{
	DefineCustomIntVariable("taskq.shard_id",
							"Sets the shard number stamped into the ids this database makes (-1: none).",
							"A taskq_router database sends the calls about a job to the shard its id names; set it per database, with ALTER DATABASE ... SET taskq.shard_id.",
							&taskq_shard_id,
							-1,
							-1,
							255,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

/*
 * The text form of a uuid Datum, for error messages.
 */
char *
TaskqUuidText(Datum uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, uuid));
}

/*
 * taskq.uuid7() RETURNS uuid: a fresh time-ordered id, for SQL that needs
 * one (webhook deliveries) and for users.
 */
PG_FUNCTION_INFO_V1(taskq_uuid7);
Datum
taskq_uuid7(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));

	TaskqUuid7(uuid);
	PG_RETURN_UUID_P(uuid);
}

/*
 * taskq._random_uuid() RETURNS uuid: a version 4 UUID, as
 * gen_random_uuid() makes, from the pool: the lease token of a claim.
 */
PG_FUNCTION_INFO_V1(taskq_random_uuid);
Datum
taskq_random_uuid(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));

	TaskqRandomUuid(uuid);
	PG_RETURN_UUID_P(uuid);
}

/*
 * Fill *uuid with a version 4 UUID from the pool (a lease token).
 */
void
TaskqRandomUuid(pg_uuid_t *uuid)
{
	random_bytes(uuid->data, UUID_LEN);
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;	/* version 4 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
}
