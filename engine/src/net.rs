//! Typed connections over madsim's simulated network.
//!
//! It owns connection set-up and message typing: a connection is one reliable, ordered stream
//! between two endpoints (madsim's `connect1`), carrying values of one message type per
//! direction. Network faults apply to every message: clogs delay them, a killed peer resets the
//! stream. It does not retry or time out: protocols above decide that.
//!
//! It also owns the per-link faults madsim lacks, as a madsim simulator plugin ([`LinkFaults`]):
//! packet loss on a stream costs retransmissions (a timeout that doubles per loss, as TCP's),
//! and a latency spike adds a delay drawn per message; both keep the stream's order. The plugin
//! counts the messages each link carries, so the fault injector can tell a fault that met
//! traffic from one that hit an idle link. Nodes never read it: it is the simulated wire.
//!
//! Messages move by value and must be plain data — never a handle to another node's memory.

use std::any::Any;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::net::{Endpoint, Receiver, Sender};
use madsim::plugin::Simulator;
use madsim::task::NodeId as SimNode;
use rand::Rng;

/// The sending half of a connection: messages of type `T`.
pub struct Tx<T> {
    inner: Sender,
    peer: IpAddr,
    /// When the previous message was released onto the wire: later ones never overtake it.
    released: Cell<Option<std::time::Instant>>,
    _t: PhantomData<fn(T)>,
}

/// The receiving half of a connection: messages of type `T`.
pub struct Rx<T> {
    inner: Receiver,
    _t: PhantomData<fn() -> T>,
}

impl<T: Any + Send + Sync> Tx<T> {
    pub async fn send(&self, msg: T) -> io::Result<()> {
        let impairment = LinkFaults::current().carry(madsim::plugin::node(), self.peer);
        if let Some(delay) = impairment.and_then(Impairment::draw_delay) {
            let earliest = self.released.get().map_or(crate::clock::now(), |r| r + Duration::from_micros(1));
            let release = (crate::clock::now() + delay).max(earliest);
            self.released.set(Some(release));
            madsim::time::sleep_until(release).await;
        }
        self.inner.send(Box::new(msg)).await
    }
}

/// A fault on one direction of a link: lost packets, extra latency, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    /// Probability that a transmission is lost and must be retransmitted.
    pub loss_rate: f64,
    /// Each message is delayed by up to this much more (drawn uniformly).
    pub extra_latency_ms: u64,
}

/// The first retransmission timeout; it doubles with every loss of the same message.
const RETRANSMIT_MS: u64 = 20;

impl Impairment {
    /// How long a message waits before it goes out: its retransmissions plus its extra latency.
    fn draw_delay(self) -> Option<Duration> {
        // madsim's generator, seeded from the run's seed: deterministic, unlike rand's.
        let mut rng = madsim::rand::thread_rng();
        let mut delay_ms = 0;
        let mut timeout_ms = RETRANSMIT_MS;
        while self.loss_rate > 0.0 && rng.gen_bool(self.loss_rate) {
            delay_ms += timeout_ms;
            timeout_ms = (timeout_ms * 2).min(1000);
        }
        if self.extra_latency_ms > 0 {
            delay_ms += rng.gen_range(0..=self.extra_latency_ms);
        }
        (delay_ms > 0).then(|| Duration::from_millis(delay_ms))
    }
}

/// The simulated wire's per-link faults and traffic counters (a madsim simulator plugin).
#[derive(Default)]
pub struct LinkFaults {
    links: Mutex<Links>,
}

#[derive(Default)]
struct Links {
    impaired: BTreeMap<(SimNode, IpAddr), Impairment>,
    carried: BTreeMap<(SimNode, IpAddr), u64>,
}

impl Simulator for LinkFaults {
    fn new(_: &madsim::rand::GlobalRng, _: &madsim::time::TimeHandle, _: &madsim::Config) -> Self {
        LinkFaults::default()
    }
}

impl LinkFaults {
    /// The plugin of the running simulation. Every runtime that runs nodes must add it
    /// (`Runtime::add_simulator::<LinkFaults>()`).
    pub fn current() -> Arc<LinkFaults> {
        madsim::plugin::simulator::<LinkFaults>()
    }

    /// Sets (or, with `None`, lifts) the impairment of the link from node `src` to address `dst`.
    pub fn impair(&self, src: SimNode, dst: IpAddr, impairment: Option<Impairment>) {
        let mut links = self.links.lock().expect("no task panics while holding the lock");
        match impairment {
            Some(i) => _ = links.impaired.insert((src, dst), i),
            None => _ = links.impaired.remove(&(src, dst)),
        }
    }

    /// Messages sent so far from node `src` to address `dst`.
    pub fn carried(&self, src: SimNode, dst: IpAddr) -> u64 {
        let links = self.links.lock().expect("no task panics while holding the lock");
        links.carried.get(&(src, dst)).copied().unwrap_or(0)
    }

    /// Counts one message on a link and returns the link's impairment, if any.
    fn carry(&self, src: SimNode, dst: IpAddr) -> Option<Impairment> {
        let mut links = self.links.lock().expect("no task panics while holding the lock");
        *links.carried.entry((src, dst)).or_default() += 1;
        links.impaired.get(&(src, dst)).copied()
    }
}

impl<T: Any> Rx<T> {
    /// The next message; an error once the connection is reset (the peer died or closed).
    pub async fn recv(&mut self) -> io::Result<T> {
        let payload = self.inner.recv().await?;
        match payload.downcast::<T>() {
            Ok(msg) => Ok(*msg),
            Err(_) => panic!(
                "message of an unexpected type on a {} connection: a protocol bug",
                std::any::type_name::<T>()
            ),
        }
    }
}

/// A node's client endpoint, from which it opens connections.
pub struct Client {
    endpoint: Endpoint,
}

impl Client {
    /// Binds an ephemeral port on the current node.
    pub async fn bind() -> Self {
        let endpoint = Endpoint::bind("0.0.0.0:0")
            .await
            .expect("binding an ephemeral port cannot fail in the simulation");
        Client { endpoint }
    }

    /// Opens a connection: requests of type `Q` out, responses of type `A` back.
    pub async fn connect<Q, A>(&self, addr: SocketAddr) -> io::Result<(Tx<Q>, Rx<A>)> {
        let (tx, rx) = self.endpoint.connect1(addr).await?;
        Ok((wrap_tx(tx, addr), wrap_rx(rx)))
    }

    /// Connects, retrying every `retry` until the peer accepts, at most `attempts` times.
    pub async fn connect_retrying<Q, A>(
        &self,
        addr: SocketAddr,
        retry: Duration,
        attempts: u32,
    ) -> io::Result<(Tx<Q>, Rx<A>)> {
        assert!(attempts > 0);
        let mut last = None;
        for _ in 0..attempts {
            match self.connect(addr).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
            madsim::time::sleep(retry).await;
        }
        Err(last.expect("at least one attempt"))
    }
}

/// A listening endpoint: accepts connections carrying requests `Q` and responses `A`.
pub struct Listener<Q, A> {
    endpoint: Endpoint,
    _t: PhantomData<fn(Q) -> A>,
}

impl<Q: Any, A: Any + Send + Sync> Listener<Q, A> {
    /// Binds `port` on the current node. Panics if it is taken: that is a bug (a node leaked
    /// its endpoint past a restart, or two services share a port).
    pub async fn bind(port: u16) -> Self {
        let endpoint =
            Endpoint::bind(("0.0.0.0", port)).await.unwrap_or_else(|e| panic!("binding port {port}: {e}"));
        Listener { endpoint, _t: PhantomData }
    }

    /// The next incoming connection: its response half, request half and peer address.
    pub async fn accept(&self) -> io::Result<(Tx<A>, Rx<Q>, SocketAddr)> {
        let (tx, rx, from) = self.endpoint.accept1().await?;
        Ok((wrap_tx(tx, from), wrap_rx(rx), from))
    }
}

fn wrap_tx<T>(inner: Sender, peer: SocketAddr) -> Tx<T> {
    Tx { inner, peer: peer.ip(), released: Cell::new(None), _t: PhantomData }
}

fn wrap_rx<T>(inner: Receiver) -> Rx<T> {
    Rx { inner, _t: PhantomData }
}
