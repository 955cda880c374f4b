// SPDX-License-Identifier: GPL-2.0

#include <linux/bottom_half.h>
#include <linux/irqflags.h>
#include <linux/preempt.h>
#include <linux/spinlock.h>

__rust_helper void rust_helper_spin_lock_bh(spinlock_t *lock)
{
	spin_lock_bh(lock);
}

__rust_helper void rust_helper_spin_unlock_bh(spinlock_t *lock)
{
	spin_unlock_bh(lock);
}

__rust_helper int rust_helper_spin_trylock_bh(spinlock_t *lock)
{
	return spin_trylock_bh(lock);
}

__rust_helper bool rust_helper_polynic_irqs_disabled(void)
{
	return irqs_disabled();
}

__rust_helper bool rust_helper_polynic_bh_disabled(void)
{
	return softirq_count() != 0;
}

/*
 * Whether the caller may not sleep because of its context: hard or soft
 * interrupt, bottom halves disabled (a NAPI poll, a transmit), or interrupts
 * disabled. (Held spinlocks are not seen without CONFIG_PREEMPT_COUNT; the
 * callers' documentation covers those.)
 */
__rust_helper bool rust_helper_polynic_in_atomic_section(void)
{
	return in_interrupt() || irqs_disabled();
}
