// SPDX-License-Identifier: GPL-2.0
/* Helpers for the polynic blk-mq request additions (rust/kernel/block/mq/). */

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/highmem.h>
#include <linux/skbuff.h>

#include "../bindings/polynic_blk.h"

__rust_helper sector_t rust_helper_blk_rq_pos(const struct request *rq)
{
	return blk_rq_pos(rq);
}

__rust_helper unsigned int rust_helper_blk_rq_bytes(const struct request *rq)
{
	return blk_rq_bytes(rq);
}

__rust_helper unsigned int rust_helper_polynic_req_op(const struct request *rq)
{
	return req_op(rq);
}

__rust_helper bool rust_helper_polynic_rq_is_fua(const struct request *rq)
{
	return rq->cmd_flags & REQ_FUA;
}

__rust_helper bool rust_helper_polynic_rq_is_preflush(const struct request *rq)
{
	return rq->cmd_flags & REQ_PREFLUSH;
}

__rust_helper bool rust_helper_blk_rq_has_data(struct request *rq)
{
	return blk_rq_has_data(rq);
}

/*
 * Where a transfer into or out of a request's pages comes from or goes to:
 * a plain buffer, or (into the request only) a socket buffer's data.
 */
enum polynic_rq_peer { POLYNIC_TO_RQ, POLYNIC_FROM_RQ, POLYNIC_SKB_TO_RQ };

/*
 * Moves @len bytes between the request's data pages, starting @offset bytes
 * into the request, and @buf (or @skb's data from @skb_off). The caller has
 * checked that [offset, offset + len) lies within blk_rq_bytes(rq) and, for
 * a socket buffer, that its range lies within skb->len. Returns the number
 * of bytes moved.
 *
 * A request is moved a frame at a time, so most calls start deep inside it:
 * whole bios before @offset are skipped by their size, and the rest of the
 * way by advancing a copy of the bio's iterator over its vectors, instead of
 * visiting every page before @offset (which, for a 1 MiB request in 8 KiB
 * frames, cost more than the copies). Each page in range is then mapped
 * with kmap_local_page for its part of the move.
 */
__rust_helper unsigned int rust_helper_polynic_rq_xfer(struct request *rq, unsigned int offset,
						       unsigned int len, void *buf,
						       const struct sk_buff *skb, unsigned int skb_off,
						       unsigned int peer)
{
	struct bio *bio;
	unsigned int skip = offset, done = 0;

	__rq_for_each_bio(bio, rq) {
		struct bvec_iter it = bio->bi_iter;

		if (done == len)
			break;
		/* What lies before @offset: whole bios, then part of this one. */
		if (skip >= it.bi_size) {
			skip -= it.bi_size;
			continue;
		}
		if (skip && !bvec_iter_advance(bio->bi_io_vec, &it, skip))
			break;
		skip = 0;
		while (it.bi_size && done < len) {
			struct bio_vec bv = bio_iter_iovec(bio, it);
			unsigned int n = min(bv.bv_len, len - done);
			void *p = kmap_local_page(bv.bv_page);
			void *at = p + bv.bv_offset;
			int err = 0;

			switch (peer) {
			case POLYNIC_TO_RQ:
				memcpy(at, buf + done, n);
				break;
			case POLYNIC_FROM_RQ:
				memcpy(buf + done, at, n);
				break;
			case POLYNIC_SKB_TO_RQ:
				err = skb_copy_bits(skb, skb_off + done, at, n);
				break;
			}
			kunmap_local(p);
			if (err)
				return done;
			if (peer != POLYNIC_FROM_RQ)
				flush_dcache_page(bv.bv_page);
			done += n;
			bio_advance_iter_single(bio, &it, n);
		}
	}
	return done;
}

/* Copies between @buf and the request's pages; @to_rq picks the direction. */
__rust_helper unsigned int rust_helper_polynic_rq_copy(struct request *rq, unsigned int offset,
						       void *buf, unsigned int len, bool to_rq)
{
	return rust_helper_polynic_rq_xfer(rq, offset, len, buf, NULL, 0,
			       to_rq ? POLYNIC_TO_RQ : POLYNIC_FROM_RQ);
}

/* Number of single-page segments of the request. */
__rust_helper unsigned int rust_helper_polynic_rq_nr_segments(struct request *rq)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int n = 0;

	rq_for_each_segment(bv, rq, iter)
		n++;
	return n;
}

/* Starts a segment walk over @rq (which must carry data). */
__rust_helper void rust_helper_polynic_rq_seg_start(struct request *rq,
						    struct polynic_rq_seg_iter *it)
{
	it->iter.bio = rq->bio;
	if (it->iter.bio)
		it->iter.iter = it->iter.bio->bi_iter;
	it->pos = 0;
}

/*
 * Advances to the next single-page segment, filling it->bv; false at the
 * end. it->pos is the segment's byte offset within the request.
 */
__rust_helper bool rust_helper_polynic_rq_seg_next(struct polynic_rq_seg_iter *it)
{
	if (it->bv.bv_len && it->bv.bv_page)
		it->pos += it->bv.bv_len;
	while (it->iter.bio) {
		if (it->iter.iter.bi_size) {
			it->bv = bio_iter_iovec(it->iter.bio, it->iter.iter);
			bio_advance_iter_single(it->iter.bio, &it->iter.iter, it->bv.bv_len);
			return true;
		}
		it->iter.bio = it->iter.bio->bi_next;
		if (it->iter.bio)
			it->iter.iter = it->iter.bio->bi_iter;
	}
	return false;
}

/*
 * Looks up the request mapped to @tag on hardware queue @hwq and, if there
 * is one that still holds that tag, calls @take(rq, out) inside an SRCU
 * read section of the tag set, as the block layer's own tag iteration does
 * (blk_mq_tagset_busy_iter): requests are freed with call_srcu() on
 * set->tags_srcu after blk_mq_clear_rq_mapping(), so @rq cannot be freed
 * while @take runs. rqs[] is not cleared when a driver tag is released, so
 * an entry may name a request that now holds another tag or none: the
 * request's own tag is checked. @take decides, from the driver's own count,
 * whether the request is the driver's to reference (the caller checks the
 * tag again once it holds a reference).
 */
__rust_helper void rust_helper_polynic_tag_to_rq_locked(struct blk_mq_tag_set *set, unsigned int hwq,
							 unsigned int tag,
							 void (*take)(struct request *, void *),
							 void *out)
{
	struct blk_mq_tags *tags;
	struct request *rq;
	int idx;

	if (hwq >= set->nr_hw_queues || !set->tags || !set->tags[hwq])
		return;
	tags = set->tags[hwq];
	if (tag >= tags->nr_tags)
		return;
	idx = srcu_read_lock(&set->tags_srcu);
	rq = READ_ONCE(tags->rqs[tag]);
	if (rq && READ_ONCE(rq->tag) == (int)tag)
		take(rq, out);
	srcu_read_unlock(&set->tags_srcu, idx);
}

/* Stores a request's timeout (jiffies); blk_add_timer reads it. */
__rust_helper void rust_helper_polynic_rq_set_timeout(struct request *rq, unsigned int ticks)
{
	WRITE_ONCE(rq->timeout, ticks);
}

/*
 * Copies @len bytes at @off in @page into @dst through a local mapping:
 * the page may be user memory changing under the copy (O_DIRECT), which C
 * may read but Rust may not borrow.
 */
__rust_helper void rust_helper_polynic_page_copy_out(struct page *page, unsigned int off, void *dst,
						      unsigned int len)
{
	void *p = kmap_local_page(page);

	memcpy(dst, p + off, len);
	kunmap_local(p);
}

/*
 * Copies @len bytes of @skb, starting @skb_off bytes into its data, straight
 * into the request's pages at @offset bytes into the request: the one copy a
 * received frame's payload makes on its way to the block layer, whatever the
 * skb's layout (linear or paged).
 */
__rust_helper unsigned int rust_helper_polynic_rq_copy_from_skb(struct request *rq,
								 unsigned int offset,
								 const struct sk_buff *skb,
								 unsigned int skb_off,
								 unsigned int len)
{
	return rust_helper_polynic_rq_xfer(rq, offset, len, NULL, skb, skb_off, POLYNIC_SKB_TO_RQ);
}
