//! The store node: a durable object store for checkpoints and job metadata (S3 / HDFS, in real
//! life), and the client nodes use to reach it.
//!
//! It owns the objects, one file per key on its disk. A `Put`, `FencedPut`, `Cas` or `Delete`
//! is synced before it is acknowledged, so an acknowledged object survives any crash of the
//! store. `Cas` (compare-and-set) replaces an object only if it still holds the expected bytes:
//! the primitive that partition leadership and the manager's lease are built on, as they are on
//! ZooKeeper's versioned writes. `FencedPut` writes only while a fence object carries the
//! writer's token (the manager's lease epoch): the manager's job and checkpoint metadata go
//! through it, so a deposed manager cannot overwrite its successor's. Requests on one
//! connection are served in order. Keys are plain strings; `List` returns keys by prefix in
//! sorted order.
//!
//! The client retries a request on a fresh connection when the answer does not come within
//! `request_timeout_ms`, at most `STORE_ATTEMPTS` times: every request is idempotent.
//!
//! Every request carries an id that its answer echoes. A node's tasks share one connection, and
//! a task can be aborted mid-request (a cancelled subtask): its answer still arrives, and must
//! not be taken for the next task's.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::cluster::{NodeId, Role, STORE_PORT};
use crate::net::{Client, Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};

#[derive(Debug)]
pub enum StoreRequest {
    Put {
        key: String,
        bytes: Vec<u8>,
    },
    /// Writes `bytes` only while the fence object starts with the fence's prefix: a deposed
    /// manager's writes are refused once its successor took the lease.
    FencedPut {
        fence: Fence,
        key: String,
        bytes: Vec<u8>,
    },
    /// Writes `bytes` if the object holds `expected` (`None`: if it does not exist).
    Cas {
        key: String,
        expected: Option<Vec<u8>>,
        bytes: Vec<u8>,
    },
    Get {
        key: String,
    },
    Delete {
        key: String,
    },
    List {
        prefix: String,
    },
}

/// A fencing token: the object at `key` must start with `prefix` for a fenced write to land.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub prefix: Vec<u8>,
}

/// A fenced write was refused: the fence object no longer carries the writer's token.
#[derive(Debug, PartialEq, Eq)]
pub struct Fenced;

#[derive(Debug)]
pub enum StoreResponse {
    Done,
    /// A `Cas` found other bytes (or none): nothing was written. Here is what it found.
    Conflict(Option<Vec<u8>>),
    Value(Option<Vec<u8>>),
    Keys(Vec<String>),
}

/// The store node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let listener = Listener::<(u64, StoreRequest), (u64, StoreResponse)>::bind(STORE_PORT).await;
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(serve(ctx.clone(), tx, rx));
    }
}

async fn serve(ctx: NodeContext, tx: Tx<(u64, StoreResponse)>, mut rx: Rx<(u64, StoreRequest)>) {
    while let Ok((id, request)) = rx.recv().await {
        let response = match request {
            StoreRequest::Put { key, bytes } => {
                ctx.disk.replace(&key, &bytes);
                ctx.disk.sync(&key);
                StoreResponse::Done
            }
            StoreRequest::FencedPut { fence, key, bytes } => {
                let token = ctx.disk.read(&fence.key);
                if token.as_ref().is_some_and(|t| t.starts_with(&fence.prefix)) {
                    ctx.disk.replace(&key, &bytes);
                    ctx.disk.sync(&key);
                    StoreResponse::Done
                } else {
                    StoreResponse::Conflict(token)
                }
            }
            StoreRequest::Cas { key, expected, bytes } => {
                let current = ctx.disk.read(&key);
                if current == expected {
                    ctx.disk.replace(&key, &bytes);
                    ctx.disk.sync(&key);
                    StoreResponse::Done
                } else {
                    StoreResponse::Conflict(current)
                }
            }
            StoreRequest::Get { key } => StoreResponse::Value(ctx.disk.read(&key)),
            StoreRequest::Delete { key } => {
                ctx.disk.remove(&key);
                ctx.disk.sync(&key);
                StoreResponse::Done
            }
            StoreRequest::List { prefix } => StoreResponse::Keys(ctx.disk.list(&prefix)),
        };
        if tx.send((id, response)).await.is_err() {
            return;
        }
    }
}

const STORE_ATTEMPTS: u32 = 20;

type Conn = (Tx<(u64, StoreRequest)>, Rx<(u64, StoreResponse)>);

/// A node's handle on the store; shared by the node's tasks, one request at a time.
pub struct StoreClient {
    client: Rc<Client>,
    conn: Mutex<Option<Conn>>,
    next_id: std::cell::Cell<u64>,
    timeout: Duration,
}

impl StoreClient {
    pub fn new(ctx: &NodeContext, client: Rc<Client>) -> Self {
        let timeout = Duration::from_millis(ctx.cluster.settings.request_timeout_ms);
        StoreClient { client, conn: Mutex::new(None), next_id: std::cell::Cell::new(0), timeout }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        self.call(|| StoreRequest::Put { key: key.to_string(), bytes: bytes.clone() }).await.map(drop)
    }

    /// A write that lands only while `fence` holds. `Ok(Err(Fenced))`: refused, nothing written.
    pub async fn put_fenced(
        &self,
        fence: &Fence,
        key: &str,
        bytes: Vec<u8>,
    ) -> io::Result<Result<(), Fenced>> {
        let request =
            || StoreRequest::FencedPut { fence: fence.clone(), key: key.to_string(), bytes: bytes.clone() };
        match self.call(request).await? {
            StoreResponse::Done => Ok(Ok(())),
            StoreResponse::Conflict(_) => Ok(Err(Fenced)),
            other => panic!("store answered a fenced put with {other:?}"),
        }
    }

    /// Compare-and-set. `Ok(Ok(()))`: written; `Ok(Err(current))`: the object held `current`.
    /// A retried request that finds its own bytes already written counts as written.
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        bytes: Vec<u8>,
    ) -> io::Result<Result<(), Option<Vec<u8>>>> {
        let request =
            || StoreRequest::Cas { key: key.to_string(), expected: expected.clone(), bytes: bytes.clone() };
        match self.call(request).await? {
            StoreResponse::Done => Ok(Ok(())),
            StoreResponse::Conflict(current) if current.as_ref() == Some(&bytes) => Ok(Ok(())),
            StoreResponse::Conflict(current) => Ok(Err(current)),
            other => panic!("store answered a cas with {other:?}"),
        }
    }

    pub async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match self.call(|| StoreRequest::Get { key: key.to_string() }).await? {
            StoreResponse::Value(v) => Ok(v),
            other => panic!("store answered a get with {other:?}"),
        }
    }

    pub async fn delete(&self, key: &str) -> io::Result<()> {
        self.call(|| StoreRequest::Delete { key: key.to_string() }).await.map(drop)
    }

    pub async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        match self.call(|| StoreRequest::List { prefix: prefix.to_string() }).await? {
            StoreResponse::Keys(keys) => Ok(keys),
            other => panic!("store answered a list with {other:?}"),
        }
    }

    /// Sends a request and waits for its answer, retrying on a fresh connection.
    async fn call(&self, request: impl Fn() -> StoreRequest) -> io::Result<StoreResponse> {
        let mut conn = self.conn.lock().await;
        for _ in 0..STORE_ATTEMPTS {
            if conn.is_none() {
                let addr = NodeId::new(Role::Store, 0).addr(STORE_PORT);
                *conn = self.client.connect(addr).await.ok();
            }
            if let Some((tx, rx)) = conn.as_mut() {
                let id = self.next_id.get();
                self.next_id.set(id + 1);
                if tx.send((id, request())).await.is_ok() {
                    if let Ok(Some(response)) = madsim::time::timeout(self.timeout, answer(rx, id)).await {
                        return Ok(response);
                    }
                }
            }
            *conn = None;
            madsim::time::sleep(self.timeout).await;
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "store unreachable"))
    }
}

/// Reads answers until the one for request `id`; earlier ones belong to aborted callers.
async fn answer(rx: &mut Rx<(u64, StoreResponse)>, id: u64) -> Option<StoreResponse> {
    loop {
        let (answered, response) = rx.recv().await.ok()?;
        if answered == id {
            return Some(response);
        }
        assert!(answered < id, "the store answered request {answered} before {id} was sent");
    }
}
