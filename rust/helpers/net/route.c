// SPDX-License-Identifier: GPL-2.0
/* The IPv4 route and neighbour lookup a forwarding fast path needs
 * (rust/kernel/net/route.rs), on the model of bpf_fib_lookup(): the FIB for
 * the egress device and next hop, the neighbour table for the next hop's
 * link address, the forwarding sysctl of the ingress device. */

#include <linux/inetdevice.h>
#include <linux/netdevice.h>
#include <net/arp.h>
#include <net/inet_dscp.h>
#include <net/ip_fib.h>
#include <net/neighbour.h>
#include <net/nexthop.h>
#include <net/route.h>
#include <net/sock.h>

#include "../../bindings/polynic_route.h"

#if IS_ENABLED(CONFIG_INET)

/* Caller holds rcu_read_lock(); out->egress is valid until it drops it. */
__rust_helper int rust_helper_polynic_fib4_lookup(struct net_device *ingress, __be32 daddr, __be32 saddr,
						  u8 tos, struct polynic_fib4_result *out)
{
	struct net *net = dev_net_rcu(ingress);
	struct in_device *in_dev = __in_dev_get_rcu(ingress);
	struct fib_nh_common *nhc;
	struct flowi4 fl4 = {};
	struct fib_result res;
	struct neighbour *n;
	__be32 nexthop = daddr;
	int err;

	memset(out, 0, sizeof(*out));
	if (!in_dev || !IN_DEV_FORWARD(in_dev))
		return POLYNIC_FIB4_FORWARDING_OFF;

	fl4.flowi4_iif = ingress->ifindex;
	fl4.flowi4_dscp = inet_dsfield_to_dscp(tos);
	fl4.flowi4_scope = RT_SCOPE_UNIVERSE;
	fl4.daddr = daddr;
	fl4.saddr = saddr;
	fl4.flowi4_uid = sock_net_uid(net, NULL);
	err = fib_lookup(net, &fl4, &res, FIB_LOOKUP_NOREF);
	if (err)
		return POLYNIC_FIB4_UNREACHABLE;
	if (res.type == RTN_LOCAL)
		return POLYNIC_FIB4_LOCAL;
	if (res.type != RTN_UNICAST)
		return POLYNIC_FIB4_NOT_UNICAST;
	if (fib_info_num_path(res.fi) > 1)
		fib_select_path(net, &res, &fl4, NULL);

	nhc = res.nhc;
	/* Tunnels (lwt) and IPv6 next hops are the stack's. */
	if (nhc->nhc_lwtstate || nhc->nhc_gw_family == AF_INET6)
		return POLYNIC_FIB4_UNSUPPORTED;
	out->egress = nhc->nhc_dev;
	out->mtu = ip_mtu_from_fib_result(&res, daddr);
	if (nhc->nhc_gw_family == AF_INET)
		nexthop = nhc->nhc_gw.ipv4;
	out->nexthop = nexthop;
	if (out->egress->addr_len != ETH_ALEN)
		return POLYNIC_FIB4_UNSUPPORTED;

	n = __ipv4_neigh_lookup_noref(out->egress, (__force u32)nexthop);
	if (!n || !(READ_ONCE(n->nud_state) & NUD_VALID))
		return POLYNIC_FIB4_NO_NEIGHBOUR;
	neigh_ha_snapshot((char *)out->dmac, n, out->egress);
	/* Tell the neighbour it is in use, as ip_finish_output2 does through
	 * neigh_output: a stale entry is then confirmed, not left to expire. */
	neigh_event_send(n, NULL);
	return POLYNIC_FIB4_FORWARD;
}

#endif
