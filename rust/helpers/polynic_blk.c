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
 * Copies @len bytes between @buf and the request's data pages, starting
 * @offset bytes into the request; @to_rq picks the direction. Walks the
 * single-page segments and maps each with kmap_local_page. The caller has
 * checked that [offset, offset + len) lies within blk_rq_bytes(rq).
 * Returns the number of bytes copied.
 */
__rust_helper unsigned int rust_helper_polynic_rq_copy(struct request *rq, unsigned int offset,
						       void *buf, unsigned int len, bool to_rq)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int pos = 0, done = 0;

	rq_for_each_segment(bv, rq, iter) {
		unsigned int seg_start, seg_off, n;
		void *p;

		if (done == len)
			break;
		if (pos + bv.bv_len <= offset) {
			pos += bv.bv_len;
			continue;
		}
		seg_start = max(pos, offset + done);
		seg_off = seg_start - pos;
		n = min(bv.bv_len - seg_off, len - done);
		p = kmap_local_page(bv.bv_page);
		if (to_rq)
			memcpy(p + bv.bv_offset + seg_off, buf + done, n);
		else
			memcpy(buf + done, p + bv.bv_offset + seg_off, n);
		kunmap_local(p);
		if (to_rq)
			flush_dcache_page(bv.bv_page);
		done += n;
		pos += bv.bv_len;
	}
	return done;
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

__rust_helper struct request *rust_helper_polynic_tag_to_rq(struct blk_mq_tag_set *set,
							     unsigned int hwq, unsigned int tag)
{
	if (hwq >= set->nr_hw_queues || !set->tags || !set->tags[hwq])
		return NULL;
	return blk_mq_tag_to_rq(set->tags[hwq], tag);
}

/*
 * Copies @len bytes of @skb, starting @skb_off bytes into its data, straight
 * into the request's pages at @offset bytes into the request: the one copy a
 * received frame's payload makes on its way to the block layer, whatever the
 * skb's layout (linear or paged). The caller has checked both ranges.
 * Returns the number of bytes copied.
 */
__rust_helper unsigned int rust_helper_polynic_rq_copy_from_skb(struct request *rq,
								 unsigned int offset,
								 const struct sk_buff *skb,
								 unsigned int skb_off,
								 unsigned int len)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int pos = 0, done = 0;

	rq_for_each_segment(bv, rq, iter) {
		unsigned int seg_start, seg_off, n;
		void *p;
		int err;

		if (done == len)
			break;
		if (pos + bv.bv_len <= offset) {
			pos += bv.bv_len;
			continue;
		}
		seg_start = max(pos, offset + done);
		seg_off = seg_start - pos;
		n = min(bv.bv_len - seg_off, len - done);
		p = kmap_local_page(bv.bv_page);
		err = skb_copy_bits(skb, skb_off + done, p + bv.bv_offset + seg_off, n);
		kunmap_local(p);
		if (err)
			break;
		flush_dcache_page(bv.bv_page);
		done += n;
		pos += bv.bv_len;
	}
	return done;
}
