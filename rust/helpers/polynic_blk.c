// SPDX-License-Identifier: GPL-2.0
/* Helpers for the polynic blk-mq request additions (rust/kernel/block/mq/). */

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/highmem.h>

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
