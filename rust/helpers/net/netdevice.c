// SPDX-License-Identifier: GPL-2.0
/* Helpers for the polynic net device abstractions (rust/kernel/net/device.rs). */

#include <linux/etherdevice.h>
#include <linux/netdevice.h>
#include <linux/nsproxy.h>
#include <linux/rtnetlink.h>
#include <net/net_namespace.h>

#ifdef CONFIG_NET

/* Rust drivers take bottom-half locks in ndo_start_xmit, which netpoll may
 * call with interrupts off: keep netpoll (netconsole) away from them. */
__rust_helper void rust_helper_polynic_netdev_disable_netpoll(struct net_device *dev)
{
	dev->priv_flags |= IFF_DISABLE_NETPOLL;
}

__rust_helper void rust_helper_dev_hold(struct net_device *dev)
{
	dev_hold(dev);
}

__rust_helper void rust_helper_dev_put(struct net_device *dev)
{
	dev_put(dev);
}

__rust_helper bool rust_helper_netif_running(const struct net_device *dev)
{
	return netif_running(dev);
}

__rust_helper bool rust_helper_netif_carrier_ok(const struct net_device *dev)
{
	return netif_carrier_ok(dev);
}

/* Whether transmit queue @index is stopped by the driver or by BQL. */
__rust_helper bool rust_helper_polynic_netif_xmit_stopped(const struct net_device *dev,
							  unsigned int index)
{
	return netif_xmit_stopped(netdev_get_tx_queue(dev, index));
}

__rust_helper unsigned int rust_helper_polynic_netdev_mtu(const struct net_device *dev)
{
	return READ_ONCE(dev->mtu);
}

__rust_helper unsigned int rust_helper_polynic_netdev_flags(const struct net_device *dev)
{
	return READ_ONCE(dev->flags);
}

/* Link-layer space a sender must leave in front of its frame. */
__rust_helper unsigned int rust_helper_polynic_netdev_ll_reserved(const struct net_device *dev)
{
	return LL_RESERVED_SPACE(dev);
}

__rust_helper struct net *rust_helper_dev_net(const struct net_device *dev)
{
	return dev_net(dev);
}

__rust_helper struct net *rust_helper_get_net(struct net *net)
{
	return get_net(net);
}

__rust_helper void rust_helper_put_net(struct net *net)
{
	put_net(net);
}

/*
 * A reference on the namespace @dev is in now, or NULL if that namespace is
 * being dismantled (its count already reached zero: devices stay in it until
 * cleanup_net moves or deletes them, so holding the device does not keep its
 * namespace alive).
 */
__rust_helper struct net *rust_helper_polynic_dev_net_get(const struct net_device *dev)
{
	struct net *net;

	rcu_read_lock();
	net = maybe_get_net(dev_net_rcu(dev));
	rcu_read_unlock();
	return net;
}

/*
 * The current task's network namespace, with a reference taken, or NULL if
 * the task has none any more: an exiting task drops its namespaces
 * (exit_nsproxy_namespaces) before running the deferred closes of its files
 * (exit_task_work), so a release callback can run without one. Only the
 * task itself changes its nsproxy, so reading it here does not race.
 */
__rust_helper struct net *rust_helper_polynic_current_net_get(void)
{
	struct nsproxy *ns = current->nsproxy;

	return ns ? get_net(ns->net_ns) : NULL;
}

/* The interface index, read once (it changes when the device changes namespace). */
__rust_helper int rust_helper_polynic_netdev_ifindex(const struct net_device *dev)
{
	return READ_ONCE(dev->ifindex);
}

/*
 * Copies the device's hardware address into @out (@len bytes) consistently
 * with respect to address changes, which happen under RTNL and dev_addr_sem
 * (dev_set_mac_address_user) or under RTNL alone (drivers): the copy is
 * retried until two reads agree. Returns false if they never did (the address
 * kept changing); two agreeing reads can still both be torn if a writer stalls
 * between them in the middle of its own copy, which only holding RTNL rules
 * out.
 */
__rust_helper bool rust_helper_polynic_netdev_copy_addr(const struct net_device *dev,
						       unsigned char *out, unsigned int len)
{
	unsigned char again[MAX_ADDR_LEN];
	int tries;

	if (len > MAX_ADDR_LEN)
		len = MAX_ADDR_LEN;
	for (tries = 0; tries < 16; tries++) {
		memcpy(out, READ_ONCE(dev->dev_addr), len);
		barrier();
		memcpy(again, READ_ONCE(dev->dev_addr), len);
		if (!memcmp(out, again, len))
			return true;
	}
	return false;
}

__rust_helper struct net_device *
rust_helper_netdev_notifier_info_to_dev(const struct netdev_notifier_info *info)
{
	return netdev_notifier_info_to_dev(info);
}

#endif /* CONFIG_NET */

#ifdef CONFIG_NET
/* The rx_handler data of the device @skb is being received on (RCU held). */
__rust_helper void *rust_helper_polynic_rx_handler_data(const struct sk_buff *skb)
{
	return rcu_dereference(skb->dev->rx_handler_data);
}

__rust_helper struct net_device *rust_helper_polynic_skb_dev(const struct sk_buff *skb)
{
	return skb->dev;
}
#endif /* CONFIG_NET */

#ifdef CONFIG_NET
__rust_helper void *rust_helper_netdev_priv(const struct net_device *dev)
{
	return netdev_priv(dev);
}

__rust_helper void rust_helper_netif_stop_queue(struct net_device *dev)
{
	netif_stop_queue(dev);
}

__rust_helper bool rust_helper_netif_queue_stopped(const struct net_device *dev)
{
	return netif_queue_stopped(dev);
}

__rust_helper void rust_helper_netif_wake_queue(struct net_device *dev)
{
	netif_wake_queue(dev);
}

__rust_helper void rust_helper_eth_hw_addr_random(struct net_device *dev)
{
	eth_hw_addr_random(dev);
}

__rust_helper void rust_helper_netif_napi_add(struct net_device *dev, struct napi_struct *napi,
					      int (*poll)(struct napi_struct *, int))
{
	netif_napi_add(dev, napi, poll);
}

__rust_helper void rust_helper_netif_napi_del(struct napi_struct *napi)
{
	netif_napi_del(napi);
}

__rust_helper bool rust_helper_napi_schedule(struct napi_struct *napi)
{
	return napi_schedule(napi);
}

__rust_helper gro_result_t rust_helper_napi_gro_receive(struct napi_struct *napi,
							struct sk_buff *skb)
{
	return napi_gro_receive(napi, skb);
}
#endif /* CONFIG_NET */
