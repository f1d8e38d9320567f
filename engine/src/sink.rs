//! The sink node: the external system the job's output lands in (a database, in real life).
//!
//! It owns committed output: a batch is appended to `committed.log` and synced before it is
//! acknowledged, so an acknowledged batch survives any crash. What is in that file is what the
//! delivery checker reads as "committed".

use crate::cluster::SINK_PORT;
use crate::codec;
use crate::net::{Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::record::OutputRecord;

/// The sink's durable output file.
pub const COMMITTED_FILE: &str = "committed.log";

#[derive(Debug)]
pub enum SinkRequest {
    Append { writer: u32, batch_seq: u64, records: Vec<OutputRecord> },
}

#[derive(Debug)]
pub enum SinkResponse {
    Appended { batch_seq: u64 },
}

/// The sink node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let listener = Listener::<SinkRequest, SinkResponse>::bind(SINK_PORT).await;
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(serve(ctx.clone(), tx, rx));
    }
}

async fn serve(ctx: NodeContext, tx: Tx<SinkResponse>, mut rx: Rx<SinkRequest>) {
    while let Ok(SinkRequest::Append { writer, batch_seq, records }) = rx.recv().await {
        let mut bytes = Vec::new();
        codec::encode_output_records(&records, &mut bytes);
        ctx.disk.append(COMMITTED_FILE, bytes);
        ctx.disk.sync(COMMITTED_FILE);
        ctx.trace(TraceEvent::SinkCommitted { writer, records: records.len() as u64 });
        if tx.send(SinkResponse::Appended { batch_seq }).await.is_err() {
            return;
        }
    }
}

/// Reads committed output from the sink's disk contents.
pub fn read_committed(bytes: &[u8]) -> Vec<OutputRecord> {
    let mut out = Vec::new();
    for body in codec::frames(bytes).0 {
        codec::decode_output_records(body, &mut out);
    }
    out
}
