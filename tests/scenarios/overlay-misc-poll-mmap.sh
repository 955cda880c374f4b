#!/bin/bash
# The overlay's MiscDevice::poll and VmaRef::pgoff, driven from user space
# through polynic_misc_test (/dev/pnkmisc): poll reports readiness and is
# woken by a write; mmap at a page offset maps that page; a bad offset is
# refused.
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
ko=$(module_path polynic_misc_test) || exit 1
insmod "$ko" || fail "insmod"
[[ -c /dev/pnkmisc ]] || fail "/dev/pnkmisc missing"
python3 - <<'PY' || fail "poll/mmap checks"
import errno, mmap, os, select, sys, threading, time

fd = os.open("/dev/pnkmisc", os.O_RDWR)
p = select.poll()
p.register(fd, select.POLLIN)
assert p.poll(0) == [], "empty queue reported readable"
out = select.poll()
out.register(fd, select.POLLOUT)
assert out.poll(0) and out.poll(0)[0][1] & select.POLLOUT, "not writable"

# A blocked poll must be woken by a write from another thread.
threading.Thread(target=lambda: (time.sleep(0.5), os.write(fd, b"hello"))).start()
start = time.monotonic()
ev = p.poll(10000)
waited = time.monotonic() - start
assert ev and ev[0][1] & select.POLLIN, f"poll not woken: {ev}"
assert waited < 8, f"poll woke only after {waited:.1f}s"
assert os.read(fd, 100) == b"hello"
assert p.poll(0) == [], "drained queue still readable"

# mmap offsets select pages.
m1 = mmap.mmap(fd, 4096, offset=4096)
assert m1[:] == b"\xa1" * 4096, "page 1 content"
m0 = mmap.mmap(fd, 4096, offset=0)
assert m0[0] == 0xA0 and m0[4095] == 0xA0, "page 0 content"
for bad in (8192, 4096 * 100):
    try:
        mmap.mmap(fd, 4096, offset=bad)
    except OSError as e:
        assert e.errno == errno.EINVAL, e
    else:
        sys.exit(f"mmap at offset {bad} accepted")
m0.close(); m1.close(); os.close(fd)
print("poll and mmap-offset checks passed")
PY
dmesg | grep -q "pnkmisc release: initial namespace" || fail "release after close did not see the namespace"

# A file closed by its exiting task is released after the task's namespaces
# are gone: asking for the namespace then must fail, not dereference NULL.
mark=$(log_mark)
python3 -c 'import os; os.open("/dev/pnkmisc", os.O_RDWR); os._exit(0)' || fail "open and exit"
for ((_i = 0; _i < 50; _i++)); do log_since "$mark" | grep -q "pnkmisc release" && break; pause 0.1; done
log_since "$mark" | grep -q "pnkmisc release: no namespace" || fail "release during exit: $(log_since "$mark" | grep pnkmisc)"
rmmod polynic_misc_test || fail "rmmod"
