/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the polynic blk-mq helpers (rust/helpers/polynic_blk.c)
 * and the Rust side through bindgen.
 */
#ifndef POLYNIC_BLK_H
#define POLYNIC_BLK_H

#include <linux/blk-mq.h>

/*
 * State of a walk over a request's single-page data segments. @pos is the
 * byte offset within the request of the segment in @bv.
 */
struct polynic_rq_seg_iter {
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int pos;
};

#endif /* POLYNIC_BLK_H */
