// SPDX-License-Identifier: GPL-2.0

//! `/dev/pnkmisc`: a misc device that exists to exercise the overlay's
//! `MiscDevice::poll` and `VmaRef::pgoff` from user space.
//!
//! Each open file is a byte queue: writes append, reads drain, and poll
//! reports readable exactly when the queue is non-empty, waking pollers on
//! writes. `mmap` of one page at page offset N maps page N of the file's two
//! pages, page N filled with the byte `0xa0 + N`; other offsets are refused.
//!
//! Its release asks for the calling task's network namespace, which must
//! fail cleanly (not crash) when the file is closed by a task that is
//! exiting: the kernel drops the task's namespaces before running the
//! deferred closes of its files.

use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::virt::VmaNew,
    net::namespace::Namespace,
    new_mutex, new_poll_condvar,
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{
        poll::{mask, PollCondVar, PollTable},
        Mutex,
    },
};

module! {
    type: MiscTest,
    name: "polynic_misc_test",
    authors: ["polynic developers"],
    description: "Misc device exercising the polynic poll and mmap-offset overlay",
    license: "GPL",
}

/// Pages a file offers to `mmap`.
const PAGES: usize = 2;

#[pin_data]
struct MiscTest {
    #[pin]
    _reg: MiscDeviceRegistration<Channel>,
}

impl kernel::InPlaceModule for MiscTest {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _reg <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"pnkmisc" }),
        })
    }
}

#[pin_data]
struct Channel {
    #[pin]
    queue: Mutex<KVVec<u8>>,
    #[pin]
    readable: PollCondVar,
    pages: [Page; PAGES],
}

/// A page filled with `byte`.
fn filled_page(byte: u8) -> Result<Page> {
    let page = Page::alloc_page(GFP_KERNEL)?;
    let chunk = [byte; 256];
    for off in (0..PAGE_SIZE).step_by(chunk.len()) {
        // SAFETY: `chunk` is readable, `[off, off + 256)` is within the page, and
        // the new page is not shared yet, so nothing races with the write.
        unsafe { page.write_raw(chunk.as_ptr(), off, chunk.len())? };
    }
    Ok(page)
}

#[vtable]
impl MiscDevice for Channel {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let pages = [filled_page(0xa0)?, filled_page(0xa1)?];
        KBox::try_pin_init(
            try_pin_init!(Channel {
                queue <- new_mutex!(KVVec::new()),
                readable <- new_poll_condvar!("pnkmisc_readable"),
                pages,
            }),
            GFP_KERNEL,
        )
    }

    fn release(_me: Pin<KBox<Self>>, _file: &File) {
        match Namespace::current() {
            Ok(ns) if ns.is(Namespace::init()) => pr_info!("pnkmisc release: initial namespace\n"),
            Ok(_) => pr_info!("pnkmisc release: another namespace\n"),
            Err(e) => pr_info!("pnkmisc release: no namespace ({:?}): the task is exiting\n", e),
        }
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let me = kiocb.file();
        let n = iov.copy_from_iter_vec(&mut *me.queue.lock(), GFP_KERNEL)?;
        me.readable.notify_all();
        Ok(n)
    }

    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let me = kiocb.file();
        let mut queue = me.queue.lock();
        let n = iov.copy_to_iter(&queue);
        let rest = queue.len() - n;
        queue.copy_within(n.., 0);
        queue.truncate(rest);
        Ok(n)
    }

    fn poll(me: Pin<&Channel>, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &me.readable);
        let mut ready = mask::OUT | mask::WRNORM;
        if !me.queue.lock().is_empty() {
            ready |= mask::IN | mask::RDNORM;
        }
        ready
    }

    fn mmap(me: Pin<&Channel>, _file: &File, vma: &VmaNew) -> Result {
        let page = me.pages.get(vma.pgoff()).ok_or(EINVAL)?;
        if vma.end() - vma.start() != PAGE_SIZE {
            return Err(EINVAL);
        }
        vma.set_mixedmap().vm_insert_page(vma.start(), page)
    }
}
