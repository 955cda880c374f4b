/* SPDX-License-Identifier: GPL-2.0 */
/* The route lookup result shared by rust/helpers/net/route.c and rust/kernel/net/route.rs. */
#ifndef POLYNIC_ROUTE_H
#define POLYNIC_ROUTE_H

#include <linux/if_ether.h>
#include <linux/types.h>

struct net_device;

/* What rust_helper_polynic_fib4_lookup() found (its return value). */
#define POLYNIC_FIB4_FORWARD 0
#define POLYNIC_FIB4_LOCAL 1
#define POLYNIC_FIB4_NOT_UNICAST 2
#define POLYNIC_FIB4_UNREACHABLE 3
#define POLYNIC_FIB4_FORWARDING_OFF 4
#define POLYNIC_FIB4_NO_NEIGHBOUR 5
#define POLYNIC_FIB4_UNSUPPORTED 6

struct polynic_fib4_result {
	struct net_device *egress;
	__be32 nexthop;
	u32 mtu;
	u8 dmac[ETH_ALEN];
};

#endif
