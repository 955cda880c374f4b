// SPDX-License-Identifier: GPL-2.0
/* Helper for the polynic shared-area abstraction (rust/kernel/mm/shared_area.rs). */

#include <linux/gfp.h>
#include <asm/shmparam.h>
#include <linux/vmalloc.h>

/*
 * vmalloc_user() charged to the caller's memory cgroup: zeroed memory
 * flagged for mapping into user space (VM_USERMAP), as vmalloc_user()
 * allocates it, but with GFP_KERNEL_ACCOUNT, since a process asks for it
 * and keeps it for as long as it holds the file.
 */
__rust_helper void *rust_helper_polynic_vmalloc_user_account(unsigned long size)
{
	return __vmalloc_node_range_noprof(size, SHMLBA, VMALLOC_START, VMALLOC_END,
					   GFP_KERNEL_ACCOUNT | __GFP_ZERO, PAGE_KERNEL,
					   VM_USERMAP, NUMA_NO_NODE,
					   __builtin_return_address(0));
}
