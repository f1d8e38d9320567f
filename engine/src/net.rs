//! Typed connections over madsim's simulated network.
//!
//! It owns connection set-up and message typing: a [`Conn`] is one reliable, ordered stream
//! between two endpoints (madsim's `connect1`), carrying values of one message type per
//! direction. Network faults apply to every message: clogs delay them, a killed peer resets the
//! stream. It does not retry or time out: protocols above decide that.
//!
//! Messages move by value and must be plain data — never a handle to another node's memory.

use std::any::Any;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use madsim::net::{Endpoint, Receiver, Sender};

/// The sending half of a connection: messages of type `T`.
pub struct Tx<T> {
    inner: Sender,
    _t: PhantomData<fn(T)>,
}

/// The receiving half of a connection: messages of type `T`.
pub struct Rx<T> {
    inner: Receiver,
    _t: PhantomData<fn() -> T>,
}

impl<T: Any + Send + Sync> Tx<T> {
    pub async fn send(&self, msg: T) -> io::Result<()> {
        self.inner.send(Box::new(msg)).await
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
        Ok((wrap_tx(tx), wrap_rx(rx)))
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
        Ok((wrap_tx(tx), wrap_rx(rx), from))
    }
}

fn wrap_tx<T>(inner: Sender) -> Tx<T> {
    Tx { inner, _t: PhantomData }
}

fn wrap_rx<T>(inner: Receiver) -> Rx<T> {
    Rx { inner, _t: PhantomData }
}
