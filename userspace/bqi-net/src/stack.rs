//! One endpoint's protocol stack: smoltcp's interface and sockets over the
//! endpoint, the registry connection that keeps the endpoint granted, and
//! the two ways time moves on: the application's own blocking calls, which
//! poll the stack and sleep on the endpoint's file, and a timer thread
//! (seed 003 §2.1) that runs retransmissions and acknowledgements while the
//! application is busy elsewhere.

use crate::device::EndpointDevice;
use crate::error::{NetError, Result};
use crate::Config;
use bqi::registry::{Answer, Ask, Registry};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How long the timer thread sleeps at most between polls, and at least.
const TIMER_MAX: Duration = Duration::from_millis(50);
const TIMER_MIN: Duration = Duration::from_millis(2);

/// How long dropping the last handle of a stack waits for its connections
/// to close in order (FIN sent and acknowledged).
const LINGER: Duration = Duration::from_secs(2);

/// What kind of endpoint to ask the registry for.
pub(crate) enum Want {
    Udp,
    TcpConnect(SocketAddrV4),
    TcpListen,
}

/// A stack over one endpoint.
pub(crate) struct Stack {
    iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) device: EndpointDevice,
    epoch: Instant,
    /// Kept open: the registry reclaims the endpoint when it closes.
    registry: Registry,
    pub(crate) dev: String,
    pub(crate) bqi: u16,
    pub(crate) local: SocketAddrV4,
    /// TCP sockets whose handles were dropped: removed once closed.
    orphans: Vec<SocketHandle>,
    /// Listening sockets of a listener, and connections they produced
    /// that `accept` has not taken.
    pub(crate) listening: Vec<SocketHandle>,
    pub(crate) accepted: std::collections::VecDeque<SocketHandle>,
    /// TCP sockets whose peer has sent its FIN. smoltcp forgets it once
    /// the connection closes (our FIN acknowledged too), and a reader that
    /// had not yet seen the end must still get end of file, not an error.
    fin_received: HashSet<SocketHandle>,
    pub(crate) backlog: usize,
    pub(crate) socket_buffer: usize,
    /// How long a blocking call spins on the event queue before it sleeps.
    pub(crate) busy_poll: Option<Duration>,
}

/// A stack shared by the sockets on its endpoint.
pub(crate) type Shared = Arc<Mutex<Stack>>;

/// Locks a stack; a thread that panicked holding it left it usable.
pub(crate) fn lock(s: &Mutex<Stack>) -> MutexGuard<'_, Stack> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stack {
    /// Asks the registry for an endpoint on `cfg.dev` bound to `port` (0:
    /// any), maps it and builds the stack; starts its timer thread.
    pub(crate) fn open(cfg: &Config, port: u16, want: Want) -> Result<Shared> {
        let (ip, prefix) = bqi::iface::ipv4(&cfg.dev)
            .ok_or_else(|| NetError::NoDevice(format!("{} has no IPv4 address", cfg.dev)))?;
        let own_mac = bqi::iface::mac(&cfg.dev).map_err(|e| NetError::NoDevice(e.to_string()))?;
        let mtu = bqi::iface::mtu(&cfg.dev).map_err(|e| NetError::NoDevice(e.to_string()))?;
        let mut registry = Registry::connect(&cfg.registry)?;
        let local = SocketAddrV4::new(ip, port);
        let (dev, buffers) = (cfg.dev.clone(), cfg.buffers);
        let open = !matches!(want, Want::TcpConnect(_));
        let (ask, remote) = match want {
            Want::Udp => (Ask::Udp { dev, local, remote: None, buffers }, None),
            Want::TcpConnect(r) => (Ask::Tcp { dev, local, remote: Some(r), buffers }, Some(r)),
            Want::TcpListen => (Ask::Tcp { dev, local, remote: None, buffers }, None),
        };
        // The neighbour first: a connection to an unreachable peer needs no
        // endpoint.
        let peer_mac = match remote {
            Some(r) => Some(neighbour(&mut registry, &cfg.dev, ip, r)?),
            None => None,
        };
        let (endpoint, answer) = registry.endpoint(&ask)?;
        let Answer::Granted { bqi, local: granted } = answer else {
            return Err(NetError::Registry(format!("unexpected answer {answer:?}")));
        };
        let local = granted.unwrap_or(local);
        let mut device = EndpointDevice::new(endpoint, own_mac, mtu, open);
        if let (Some(r), Some(mac)) = (remote, peer_mac) {
            device.learn(*r.ip(), mac);
        }
        let mut config = IfaceConfig::new(HardwareAddress::Ip);
        config.random_seed = random_seed();
        let epoch = Instant::now();
        let mut iface = Interface::new(config, &mut device, SmolInstant::from_micros(0));
        iface.update_ip_addrs(|addrs| {
            // Room for one address is always there in a new interface.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ip), prefix));
        });
        let stack = Arc::new(Mutex::new(Stack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            epoch,
            registry,
            dev: cfg.dev.clone(),
            bqi,
            local,
            orphans: Vec::new(),
            listening: Vec::new(),
            accepted: Default::default(),
            fin_received: HashSet::new(),
            backlog: cfg.backlog.max(1),
            socket_buffer: cfg.socket_buffer,
            busy_poll: cfg.busy_poll,
        }));
        spawn_timer(Arc::downgrade(&stack));
        Ok(stack)
    }

    /// smoltcp's clock.
    pub(crate) fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// Starts connecting TCP socket `h` from the endpoint's port to
    /// `remote`.
    pub(crate) fn tcp_connect(&mut self, h: SocketHandle, remote: SocketAddrV4) -> Result<()> {
        let port = self.local.port();
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(self.iface.context(), (IpAddress::Ipv4(*remote.ip()), remote.port()), port)
            .map_err(|e| NetError::Refused(format!("connect: {e}")))
    }

    /// A new TCP socket with the configured buffers.
    pub(crate) fn new_tcp(&mut self) -> SocketHandle {
        let n = self.socket_buffer;
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; n]), tcp::SocketBuffer::new(vec![0; n]));
        s.set_nagle_enabled(false);
        // Every segment acknowledged at once: with a delayed acknowledgement
        // the kernel's sender, paced by acknowledgements, waits for it.
        s.set_ack_delay(None);
        self.sockets.add(s)
    }

    /// Runs the stack: every received frame in, everything due out (one
    /// doorbell at most); keeps a listener's backlog full and reaps closed
    /// orphans.
    pub(crate) fn poll(&mut self) {
        self.poll_iface();
        if !self.listening.is_empty() {
            self.refill_backlog();
        }
        // A failed doorbell means the endpoint ended; the device knows.
        let _ = self.device.flush();
        let (sockets, fins) = (&mut self.sockets, &mut self.fin_received);
        self.orphans.retain(|h| {
            let done = matches!(sockets.get::<tcp::Socket>(*h).state(), tcp::State::Closed | tcp::State::TimeWait);
            if done {
                sockets.remove(*h);
                fins.remove(h);
            }
            !done
        });
    }

    /// One pass of smoltcp over the device, then notes the sockets whose
    /// peer finished. Every state that follows a received FIN lasts at
    /// least until the next pass (leaving it takes our own close or a
    /// later acknowledgement or timer), so none is missed.
    fn poll_iface(&mut self) {
        let now = self.now();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        for (h, s) in self.sockets.iter() {
            if let smoltcp::socket::Socket::Tcp(t) = s {
                if matches!(
                    t.state(),
                    tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing | tcp::State::TimeWait
                ) {
                    self.fin_received.insert(h);
                }
            }
        }
    }

    /// Whether the peer of TCP socket `h` sent its FIN (its data ended).
    pub(crate) fn fin_received(&self, h: SocketHandle) -> bool {
        self.fin_received.contains(&h)
    }

    /// Removes TCP socket `h` and what was noted about it (handles are
    /// reused).
    pub(crate) fn remove_tcp(&mut self, h: SocketHandle) {
        self.sockets.remove(h);
        self.fin_received.remove(&h);
    }

    /// Moves listening sockets that got a connection to the accept queue
    /// and listens with new ones in their place.
    fn refill_backlog(&mut self) {
        let mut i = 0;
        while i < self.listening.len() {
            let h = self.listening[i];
            if self.sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen {
                i += 1;
                continue;
            }
            self.listening.swap_remove(i);
            self.accepted.push_back(h);
        }
        while self.listening.len() < self.backlog {
            let h = self.new_tcp();
            if self.sockets.get_mut::<tcp::Socket>(h).listen(self.local.port()).is_err() {
                self.remove_tcp(h);
                break;
            }
            self.listening.push(h);
        }
        // Frames that found no listener while the backlog was short were
        // answered with a reset: the next poll serves new ones.
        self.poll_iface();
    }

    /// Gives a TCP socket up: closed in order, removed once closed.
    pub(crate) fn orphan(&mut self, h: SocketHandle) {
        self.sockets.get_mut::<tcp::Socket>(h).close();
        self.orphans.push(h);
        self.poll();
    }

    /// How long until the stack needs polling again.
    pub(crate) fn delay(&mut self) -> Option<Duration> {
        let now = self.now();
        self.iface.poll_delay(now, &self.sockets).map(|d: SmolDuration| Duration::from_micros(d.total_micros()))
    }

    /// Tells the registry about a connection accepted on this listening
    /// endpoint, so that it resets it if the application dies.
    pub(crate) fn note_accepted(&mut self, remote: SocketAddrV4) -> Result<()> {
        self.registry.ask(&Ask::Accepted { bqi: self.bqi, remote })?;
        Ok(())
    }

    /// Finds the link-layer address of `ip` through the registry.
    pub(crate) fn resolve(&mut self, ip: Ipv4Addr) -> Result<()> {
        let (dev, src) = (self.dev.clone(), *self.local.ip());
        let mac = neighbour(&mut self.registry, &dev, src, SocketAddrV4::new(ip, 0))?;
        self.device.learn(ip, mac);
        Ok(())
    }

    /// The endpoint's file.
    pub(crate) fn fd(&self) -> RawFd {
        self.device.endpoint().fd().as_raw_fd()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Connections still open are closed in order, for a while.
        for (_, s) in self.sockets.iter_mut() {
            if let smoltcp::socket::Socket::Tcp(t) = s {
                t.close();
            }
        }
        let until = Instant::now() + LINGER;
        loop {
            self.poll();
            let open = self.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => !matches!(t.state(), tcp::State::Closed | tcp::State::TimeWait),
                _ => false,
            });
            if !open || self.device.ended() || Instant::now() >= until {
                break;
            }
            let wait = self.delay().unwrap_or(TIMER_MAX).clamp(Duration::from_millis(1), TIMER_MAX);
            wait_readable(self.fd(), wait);
        }
    }
}

fn neighbour(registry: &mut Registry, dev: &str, src: Ipv4Addr, to: SocketAddrV4) -> Result<[u8; 6]> {
    match registry.ask(&Ask::Neighbour { dev: dev.to_string(), src, ip: *to.ip() }) {
        Ok((Answer::Neighbour { mac }, _)) => Ok(mac),
        Ok((other, _)) => Err(NetError::Registry(format!("unexpected answer {other:?}"))),
        Err(bqi::registry::RegistryError::Refused(_, _)) => Err(NetError::NoNeighbour(to)),
        Err(e) => Err(e.into()),
    }
}

/// The timer thread: polls the stack when its timers are due, until the
/// stack goes.
fn spawn_timer(stack: Weak<Mutex<Stack>>) {
    std::thread::spawn(move || loop {
        let wait = {
            let Some(s) = stack.upgrade() else { return };
            let mut s = lock(&s);
            s.poll();
            if s.device.ended() {
                return;
            }
            s.delay().unwrap_or(TIMER_MAX).clamp(TIMER_MIN, TIMER_MAX)
        };
        std::thread::sleep(wait);
    });
}

/// Sleeps until `fd` is readable or `timeout` passes.
pub(crate) fn wait_readable(fd: RawFd, timeout: Duration) {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().clamp(0, i32::MAX as u128) as i32;
    // SAFETY: One valid pollfd; an error or interruption just ends the wait.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// Runs `step` on the stack until it gives an answer: polls, tries, and
/// sleeps on the endpoint's file until the stack's next timer, the
/// deadline, or a frame. A non-blocking caller gets `WouldBlock` instead
/// of a sleep.
pub(crate) fn block_on<T>(
    stack: &Mutex<Stack>,
    nonblocking: bool,
    timeout: Option<Duration>,
    mut step: impl FnMut(&mut Stack) -> Option<Result<T>>,
) -> Result<T> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let (fd, delay, busy_poll) = {
            let mut s = lock(stack);
            s.poll();
            if let Some(r) = step(&mut s) {
                // What the step queued goes out now.
                s.poll();
                return r;
            }
            if s.device.ended() {
                return Err(NetError::EndpointGone);
            }
            if nonblocking {
                return Err(NetError::WouldBlock);
            }
            (s.fd(), s.delay(), s.busy_poll)
        };
        let mut wait = delay.unwrap_or(TIMER_MAX).min(TIMER_MAX);
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NetError::WouldTimeOut);
            }
            wait = wait.min(left);
        }
        if let Some(spin) = busy_poll {
            // Busy polling: watch the event queue in shared memory, with no
            // system call, before sleeping.
            let until = Instant::now() + spin.min(wait);
            let mut ready = false;
            while !ready && Instant::now() < until {
                std::hint::spin_loop();
                ready = lock(stack).device.endpoint().event_ready();
            }
            if ready {
                continue;
            }
            wait = wait.saturating_sub(spin);
        }
        if !wait.is_zero() {
            wait_readable(fd, wait);
        }
    }
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: `b` is writable for its length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(b)
    } else {
        // Any value works; distinct ones avoid sequence collisions.
        Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) << 32
    }
}
