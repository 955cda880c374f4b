// SPDX-License-Identifier: GPL-2.0

//! `workqueue::OwnedQueue`: draining waits for every item queued on the
//! queue, including items they queue in turn, and dropping the queue waits
//! for whatever is still queued.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use kernel::{
    impl_has_work, new_work,
    prelude::*,
    sync::Arc,
    time::{delay::fsleep, Delta},
    workqueue::{OwnedQueue, QueueFlags, Work, WorkItem},
};

/// A work item that sleeps a little, counts its run, and queues itself
/// again `chain` more times.
#[pin_data]
struct Slow {
    queue: *const OwnedQueue,
    runs: AtomicU32,
    chain: AtomicU32,
    #[pin]
    work: Work<Slow>,
}

// SAFETY: `queue` points to a queue that outlives every run (the tests drain
// or drop it only after their last enqueue, and never from an item).
unsafe impl Send for Slow {}
// SAFETY: See `Send`; the other fields are atomics.
unsafe impl Sync for Slow {}

impl_has_work! {
    impl HasWork<Self> for Slow { self.work }
}

impl WorkItem for Slow {
    type Pointer = Arc<Slow>;

    fn run(this: Arc<Slow>) {
        fsleep(Delta::from_millis(5));
        this.runs.fetch_add(1, Relaxed);
        if this.chain.load(Relaxed) > 0 {
            this.chain.fetch_sub(1, Relaxed);
            // SAFETY: The queue outlives every run (see the type's `Send`).
            let q = unsafe { &*this.queue };
            let _ = q.enqueue(this.clone());
        }
    }
}

fn slow(queue: &OwnedQueue, chain: u32) -> Result<Arc<Slow>> {
    Arc::pin_init(
        pin_init!(Slow {
            queue: queue as *const OwnedQueue,
            runs: AtomicU32::new(0),
            chain: AtomicU32::new(chain),
            work <- new_work!("workqueue_tests::Slow"),
        }),
        GFP_KERNEL,
    )
}

#[kunit_tests(polynic_workqueue)]
mod tests {
    use super::*;

    #[test]
    fn drain_waits_for_every_item_and_the_items_they_queue() -> Result {
        let q = KBox::new(OwnedQueue::new(c"polynic-test-wq", QueueFlags::UNBOUND, 2)?, GFP_KERNEL)?;
        let items = [slow(&q, 3)?, slow(&q, 0)?];
        for item in &items {
            let _ = q.enqueue(item.clone());
        }
        q.drain();
        assert_eq!(items[0].runs.load(Relaxed), 4);
        assert_eq!(items[1].runs.load(Relaxed), 1);
        // Drained, the queue takes items again.
        let _ = q.enqueue(items[1].clone());
        q.drain();
        assert_eq!(items[1].runs.load(Relaxed), 2);
        Ok(())
    }

    #[test]
    fn a_queue_must_be_either_per_cpu_or_unbound() {
        assert_eq!(OwnedQueue::new(c"polynic-test-wq", QueueFlags::HIGH_PRIORITY, 1).err(), Some(EINVAL));
        assert_eq!(
            OwnedQueue::new(c"polynic-test-wq", QueueFlags::PER_CPU | QueueFlags::UNBOUND, 1).err(),
            Some(EINVAL)
        );
    }

    #[test]
    fn dropping_the_queue_runs_what_is_still_queued() -> Result {
        let q = KBox::new(OwnedQueue::new(c"polynic-test-wq", QueueFlags::PER_CPU | QueueFlags::HIGH_PRIORITY, 1)?, GFP_KERNEL)?;
        let item = slow(&q, 2)?;
        let _ = q.enqueue(item.clone());
        drop(q);
        assert_eq!(item.runs.load(Relaxed), 3);
        Ok(())
    }
}
