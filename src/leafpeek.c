/*-------------------------------------------------------------------------
 *
 * leafpeek.c
 *		The first entries of a range of a B-tree index, read from the leaf
 *		page where the range starts, as few as the caller asks for.
 *
 * Why.  PostgreSQL 15's B-tree scan reads a leaf page whole at its first
 * call: it tests its scan keys on every entry from its start to the end
 * of the page (or of its range) and keeps the matches, so that it need
 * not lock the page again.  A claim of one job from jobs_pull_idx, whose
 * leaf pages hold about 160 entries of a queue, paid for about 90 of
 * them: 80,000 of the 412,000 instructions of a pull of one job and its
 * ack (test/bench/instructions.sh; callgrind counted 2 index columns read
 * past a varlena and 3 comparison calls per entry).  Here the descent is
 * the scan's (_bt_search), the start on the leaf a binary search with the
 * same comparison (_bt_compare), and then only the entries asked for are
 * read: their heap TIDs, skipping those already marked dead.
 *
 * What it returns.  Up to max heap TIDs of entries in key order, from the
 * first entry not below the key's nkeys values, as long as the entries'
 * first nrange columns equal the key's; only from that one leaf page.
 * complete says that the range has no entries beyond them (the next entry
 * is out of the range, or the page is the range's last); otherwise the
 * caller goes on, if it needs more, with an ordinary index scan from the
 * last entry's key (last), which may return some of these again.  The
 * caller reads the heap tuples under its snapshot: an entry says nothing
 * about visibility.
 *
 * Safety.  The leaf stays pinned until TaskqLeafPeekEnd, unlocked, as a
 * scan that keeps its pin keeps it: VACUUM cannot remove entries from it
 * meanwhile (its pass over an index takes a cleanup lock on each leaf),
 * so no heap TID read here can be given to another tuple before the end
 * (the heap's line pointers are freed only after the index passes).
 * Entries the caller found dead to every transaction are marked LP_DEAD
 * at the end, as the scan marks them (_bt_killitems): the page is locked
 * again and each entry found again by its heap TID, at its offset or to
 * its right (an insert may have moved it right; a split or the deletion
 * of dead entries by an insert may have moved it off, and then it is left
 * alone).  Entries of a posting list (deduplicated entries of one key)
 * are not marked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/nbtree.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

#include "taskq.h"

/* note the heap TID of an entry at offset off */
static void
peek_add(TaskqLeafPeek *peek, ItemPointer tid, OffsetNumber off, bool posting)
{
	int			i = peek->n++;

	Assert(i < TASKQ_PEEK_MAX);
	peek->tids[i] = *tid;
	peek->offsets[i] = off;
	peek->posting[i] = posting;
	peek->dead[i] = false;
}

/*
 * Read, into peek, the heap TIDs of at most max entries of index (a
 * B-tree), from the first not below values[0 .. nkeys-1] (of the index's
 * key columns' types) while their first nrange columns equal the values.
 * The leaf stays pinned: TaskqLeafPeekEnd releases it.
 */
void
TaskqLeafPeekRead(TaskqLeafPeek *peek, Relation index, Snapshot snapshot,
				  const Datum *values, int nkeys, int nrange, int max)
{
	BTScanInsert key;
	BTStack		stack;
	Buffer		buf;
	Page		page;
	BTPageOpaque opaque;
	OffsetNumber low;
	OffsetNumber high;
	OffsetNumber first;
	OffsetNumber end;
	OffsetNumber maxoff;
	OffsetNumber lastoff = InvalidOffsetNumber;

	Assert(index->rd_rel->relam == BTREE_AM_OID);
	Assert(nrange >= 1 && nrange <= nkeys &&
		   nkeys <= IndexRelationGetNumberOfKeyAttributes(index));
	peek->index = index;
	peek->buf = InvalidBuffer;
	peek->n = 0;
	peek->ndead = 0;
	peek->complete = false;
	peek->last = NULL;
	max = Min(max, TASKQ_PEEK_MAX);

	/* an insertion key on the first nkeys columns, as the scan makes it */
	key = _bt_mkscankey(index, NULL);
	_bt_metaversion(index, &key->heapkeyspace, &key->allequalimage);
	key->anynullkeys = false;
	key->nextkey = false;
	key->pivotsearch = false;
	key->scantid = NULL;
	key->keysz = nkeys;
	for (int i = 0; i < nkeys; i++)
	{
		key->scankeys[i].sk_flags &= ~SK_ISNULL;
		key->scankeys[i].sk_argument = values[i];
	}

	pgstat_count_index_scan(index);
	stack = _bt_search(index, key, &buf, BT_READ, snapshot);
	_bt_freestack(stack);
	if (!BufferIsValid(buf))
	{
		/* an empty index */
		peek->complete = true;
		pfree(key);
		return;
	}
	page = BufferGetPage(buf);
	opaque = BTPageGetOpaque(page);
	maxoff = PageGetMaxOffsetNumber(page);

	/* the first entry not below the key */
	low = P_FIRSTDATAKEY(opaque);
	high = maxoff + 1;
	while (low < high)
	{
		OffsetNumber mid = low + (high - low) / 2;

		if (_bt_compare(index, key, page, mid) > 0)
			low = mid + 1;
		else
			high = mid;
	}

	/*
	 * Where the range ends on the page (end, exclusive): past the page's
	 * last entry when that one is in the range (the common case: one
	 * comparison, where comparing each entry read cost one each), else at
	 * the first entry above the range, found by a binary search.  Entries
	 * marked dead keep their keys.
	 */
	first = low;
	end = maxoff + 1;
	key->keysz = nrange;
	if (first <= maxoff && _bt_compare(index, key, page, maxoff) != 0)
	{
		high = maxoff;
		while (low < high)
		{
			OffsetNumber mid = low + (high - low) / 2;

			if (_bt_compare(index, key, page, mid) == 0)
				low = mid + 1;
			else
				high = mid;
		}
		end = low;
	}

	/* from the first entry, those in the range */
	for (OffsetNumber off = first; off < end && peek->n < max; off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		IndexTuple	itup;

		if (ItemIdIsDead(iid))
			continue;
		itup = (IndexTuple) PageGetItem(page, iid);
		if (BTreeTupleIsPosting(itup))
		{
			int			nposting = BTreeTupleGetNPosting(itup);

			for (int j = 0; j < nposting && peek->n < max; j++)
				peek_add(peek, BTreeTupleGetPostingN(itup, j), off, true);
		}
		else
			peek_add(peek, &itup->t_tid, off, false);
		pgstat_count_index_tuples(index, 1);
		lastoff = off;
	}
	/*
	 * Read to the range's end: it ended on the page, or at the page's end
	 * it goes on only if the page is not the last and its high key (the
	 * lower bound of the pages to its right) is not above the range.
	 */
	if (peek->n < max &&
		(end <= maxoff || P_RIGHTMOST(opaque) ||
		 _bt_compare(index, key, page, P_HIKEY) < 0))
		peek->complete = true;

	/* the last entry read, for a caller that goes on from it */
	if (!peek->complete && OffsetNumberIsValid(lastoff))
		peek->last = CopyIndexTuple((IndexTuple) PageGetItem(page, PageGetItemId(page, lastoff)));
	_bt_unlockbuf(index, buf);
	peek->buf = buf;
	pfree(key);
}

/*
 * The end of a peek: mark the entries noted dead (peek->dead) as dead on
 * the page, and release it.
 */
void
TaskqLeafPeekEnd(TaskqLeafPeek *peek)
{
	if (!BufferIsValid(peek->buf))
		return;
	if (peek->ndead > 0)
	{
		Page		page;
		OffsetNumber maxoff;
		bool		killed = false;

		_bt_lockbuf(peek->index, peek->buf, BT_READ);
		page = BufferGetPage(peek->buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (int i = 0; i < peek->n; i++)
		{
			if (!peek->dead[i] || peek->posting[i])
				continue;
			for (OffsetNumber off = peek->offsets[i]; off <= maxoff; off++)
			{
				ItemId		iid = PageGetItemId(page, off);
				IndexTuple	itup = (IndexTuple) PageGetItem(page, iid);

				if (BTreeTupleIsPivot(itup) || BTreeTupleIsPosting(itup) ||
					!ItemPointerEquals(&itup->t_tid, &peek->tids[i]))
					continue;
				if (!ItemIdIsDead(iid))
				{
					ItemIdMarkDead(iid);
					killed = true;
				}
				break;
			}
		}
		if (killed)
		{
			BTPageGetOpaque(page)->btpo_flags |= BTP_HAS_GARBAGE;
			MarkBufferDirtyHint(peek->buf, true);
		}
		_bt_unlockbuf(peek->index, peek->buf);
	}
	ReleaseBuffer(peek->buf);
	peek->buf = InvalidBuffer;
	if (peek->last != NULL)
		pfree(peek->last);
	peek->last = NULL;
}
