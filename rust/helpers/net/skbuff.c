// SPDX-License-Identifier: GPL-2.0
/* Helpers for the polynic socket buffer abstraction (rust/kernel/net/skb.rs). */

#include <linux/if_vlan.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <net/checksum.h>
#include <net/gso.h>
#include <linux/ip.h>
#include <net/ip.h>
#include <linux/tcp.h>

#ifdef CONFIG_NET

__rust_helper struct sk_buff *rust_helper_alloc_skb(unsigned int size, gfp_t priority)
{
	return alloc_skb(size, priority);
}

__rust_helper void rust_helper_kfree_skb(struct sk_buff *skb)
{
	kfree_skb(skb);
}

__rust_helper void rust_helper_consume_skb(struct sk_buff *skb)
{
	consume_skb(skb);
}

__rust_helper void rust_helper_skb_reserve(struct sk_buff *skb, int len)
{
	skb_reserve(skb, len);
}

__rust_helper unsigned int rust_helper_skb_headroom(const struct sk_buff *skb)
{
	return skb_headroom(skb);
}

__rust_helper int rust_helper_skb_tailroom(const struct sk_buff *skb)
{
	return skb_tailroom(skb);
}

__rust_helper unsigned int rust_helper_skb_headlen(const struct sk_buff *skb)
{
	return skb_headlen(skb);
}

__rust_helper int rust_helper_skb_cloned(const struct sk_buff *skb)
{
	return skb_cloned(skb);
}

__rust_helper int rust_helper_skb_shared(const struct sk_buff *skb)
{
	return skb_shared(skb);
}

__rust_helper struct sk_buff *rust_helper_skb_get(struct sk_buff *skb)
{
	return skb_get(skb);
}

__rust_helper void rust_helper_skb_add_rx_frag(struct sk_buff *skb, int i, struct page *page,
						int off, int size, unsigned int truesize)
{
	skb_add_rx_frag(skb, i, page, off, size, truesize);
}

__rust_helper int rust_helper_skb_linearize(struct sk_buff *skb)
{
	return skb_linearize(skb);
}

__rust_helper struct sk_buff *rust_helper_skb_share_check(struct sk_buff *skb, gfp_t pri)
{
	return skb_share_check(skb, pri);
}

__rust_helper int rust_helper_skb_unclone(struct sk_buff *skb, gfp_t pri)
{
	return skb_unclone(skb, pri);
}

__rust_helper unsigned short rust_helper_polynic_skb_protocol(const struct sk_buff *skb)
{
	return ntohs(skb->protocol);
}

__rust_helper void rust_helper_polynic_skb_set_protocol(struct sk_buff *skb, unsigned short proto)
{
	skb->protocol = htons(proto);
}

__rust_helper void rust_helper_polynic_skb_set_dev(struct sk_buff *skb, struct net_device *dev)
{
	skb->dev = dev;
}

__rust_helper int rust_helper_polynic_skb_iif(const struct sk_buff *skb)
{
	return skb->skb_iif;
}

__rust_helper bool rust_helper_polynic_skb_vlan_tag_present(const struct sk_buff *skb)
{
	return skb_vlan_tag_present(skb);
}

__rust_helper unsigned char rust_helper_polynic_skb_pkt_type(const struct sk_buff *skb)
{
	return skb->pkt_type;
}

/* What ip_forward() does to every buffer it forwards, before the rewrite. */
__rust_helper void rust_helper_polynic_skb_prepare_to_forward(struct sk_buff *skb)
{
	skb_forward_csum(skb);
	skb_clear_tstamp(skb);
}

__rust_helper bool rust_helper_polynic_skb_is_gso(const struct sk_buff *skb)
{
	return skb_is_gso(skb);
}

__rust_helper bool rust_helper_pskb_may_pull(struct sk_buff *skb, unsigned int len)
{
	return pskb_may_pull(skb, len);
}

__rust_helper int rust_helper_pskb_trim_rcsum(struct sk_buff *skb, unsigned int len)
{
	return pskb_trim_rcsum(skb, len);
}

__rust_helper int rust_helper_skb_cow_head(struct sk_buff *skb, unsigned int headroom)
{
	return skb_cow_head(skb, headroom);
}

__rust_helper void rust_helper_skb_reset_mac_header(struct sk_buff *skb)
{
	skb_reset_mac_header(skb);
}

/*
 * Start of the MAC header relative to skb->data (zero or negative), or 1 if
 * no MAC header was set. The header lies in the linear area between head and
 * data, which is always readable.
 */
__rust_helper int rust_helper_polynic_skb_mac_offset(const struct sk_buff *skb)
{
	if (!skb_mac_header_was_set(skb))
		return 1;
	return skb_mac_offset(skb);
}

/*
 * Checksum offload: where a CHECKSUM_PARTIAL buffer wants its checksum
 * (from the data, and the field's offset from there), and marking a
 * received buffer CHECKSUM_COMPLETE.
 */
__rust_helper bool rust_helper_polynic_skb_csum_request(const struct sk_buff *skb, u32 *start, u32 *field)
{
	if (skb->ip_summed != CHECKSUM_PARTIAL)
		return false;
	*start = skb_checksum_start_offset(skb);
	*field = skb->csum_offset;
	return true;
}

/*
 * Whether the stack would take the buffer's transport checksum as good
 * without summing: verified by the device, or left to compute by a local
 * sender whose frame never crossed a wire.
 */
__rust_helper bool rust_helper_polynic_skb_csum_trusted(const struct sk_buff *skb)
{
	return skb->ip_summed == CHECKSUM_UNNECESSARY || skb->ip_summed == CHECKSUM_PARTIAL;
}

__rust_helper void rust_helper_polynic_skb_set_csum_complete(struct sk_buff *skb, __wsum csum)
{
	skb->ip_summed = CHECKSUM_COMPLETE;
	skb->csum = csum;
}

__rust_helper __sum16 rust_helper_polynic_csum_fold(__wsum csum)
{
	return csum_fold(csum);
}

__rust_helper __wsum rust_helper_polynic_csum_partial(const void *buf, int len, __wsum sum)
{
	return csum_partial(buf, len, sum);
}

__rust_helper __wsum rust_helper_polynic_csum_partial_copy(const void *src, void *dst, int len)
{
	return csum_partial_copy_nocheck(src, dst, len);
}

#endif /* CONFIG_NET */

/*
 * Segmentation on the receive path, for a consumer that takes frames no
 * larger than the wire's (a GSO buffer from a local TSO send, or frames a
 * device merged with GRO): the data goes back to the link-layer header,
 * where segmentation starts, and the segments keep the checksum state of
 * the buffer (left to compute, or verified) and may share its pages.
 * Returns the list of segments, or an error pointer; the buffer itself is
 * the caller's to free.
 */
__rust_helper struct sk_buff *rust_helper_polynic_skb_segment_rx(struct sk_buff *skb)
{
	int back;

	if (!skb_mac_header_was_set(skb))
		return ERR_PTR(-EINVAL);
	back = skb->data - skb_mac_header(skb);
	if (back < 0 || back > skb_headroom(skb))
		return ERR_PTR(-EINVAL);
	__skb_push(skb, back);
	return __skb_gso_segment(skb, NETIF_F_SG | NETIF_F_HW_CSUM, false);
}

/*
 * Removes a tag of `len` bytes between a received frame's Ethernet header
 * and what follows, as VLAN untagging does: the data (at the tag) moves
 * past it, the Ethernet addresses move up to meet it, the ethertype becomes
 * `inner` (host order), and the network header is reset to the new data, so the frame
 * reads as if it had been sent without the tag. A CHECKSUM_COMPLETE sum
 * loses the tag's bytes. The header must be the caller's alone; a cloned
 * data area is copied first (skb_cow). 0, or -EINVAL if the frame is not an
 * Ethernet frame whose data starts at the tag, or -ENOMEM.
 */
__rust_helper int rust_helper_polynic_skb_remove_tag(struct sk_buff *skb, unsigned int len, unsigned short inner)
{
	unsigned char *mac;

	if (!skb_mac_header_was_set(skb) || skb_mac_offset(skb) != -ETH_HLEN)
		return -EINVAL;
	if (!pskb_may_pull(skb, len))
		return -EINVAL;
	if (skb_cow(skb, 0))
		return -ENOMEM;
	skb_postpull_rcsum(skb, skb->data, len);
	mac = skb_mac_header(skb);
	__skb_pull(skb, len);
	memmove(mac + len, mac, 2 * ETH_ALEN);
	skb->mac_header += len;
	eth_hdr(skb)->h_proto = htons(inner);
	skb->protocol = htons(inner);
	skb_reset_network_header(skb);
	skb_reset_mac_len(skb);
	return 0;
}

/* Takes the first buffer off a list of segments (NULL at the end). */
__rust_helper struct sk_buff *rust_helper_polynic_skb_list_pop(struct sk_buff **head)
{
	struct sk_buff *skb = *head;

	if (skb) {
		*head = skb->next;
		skb_mark_not_on_list(skb);
	}
	return skb;
}

__rust_helper void rust_helper_polynic_skb_list_free(struct sk_buff *head)
{
	kfree_skb_list(head);
}

/*
 * Test support: marks a buffer whose data starts at an IPv4 header followed
 * by a TCP header as a TSO send from this host would be (network and
 * transport headers, GSO of gso_size-byte segments, checksum left to
 * compute), so that segmentation can be tested without a socket.
 */
__rust_helper void rust_helper_polynic_skb_test_mark_tcp_gso(struct sk_buff *skb, u16 gso_size)
{
	unsigned int payload;

	skb_reset_network_header(skb);
	skb_set_transport_header(skb, ip_hdrlen(skb));
	skb->protocol = htons(ETH_P_IP);
	payload = skb->len - ip_hdrlen(skb) - tcp_hdrlen(skb);
	skb_shinfo(skb)->gso_size = gso_size;
	skb_shinfo(skb)->gso_type = SKB_GSO_TCPV4;
	skb_shinfo(skb)->gso_segs = DIV_ROUND_UP(payload, gso_size);
	skb->ip_summed = CHECKSUM_PARTIAL;
	skb->csum_start = skb_transport_header(skb) - skb->head;
	skb->csum_offset = offsetof(struct tcphdr, check);
}
