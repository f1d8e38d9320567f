//! A running subtask: its input (log partitions or channels), its chain of operators, and its
//! output (a key-by exchange or the sink).
//!
//! Records are processed a batch at a time: the whole input batch goes through the chain, the
//! outputs are flushed, and only then is the input's credit returned, so a subtask never holds
//! more than one input batch's worth of unsent output.

use std::collections::BTreeMap;
use std::rc::Rc;

use tokio::sync::mpsc;

use crate::channel::{ChannelReply, ChannelSender, Delivery};
use crate::cluster::{NodeId, Role, WORKER_DATA_PORT};
use crate::job::{OperatorKind, TaskId, TaskInput, TaskOutput, TaskSpec};
use crate::net::{Client, Tx};
use crate::observe::NodeContext;
use crate::operators::aggregate::RunningAggregate;
use crate::operators::key_by::KeyByExchange;
use crate::operators::sink_writer::SinkWriter;
use crate::operators::{self, source, Stateless};
use crate::record::{Cause, LogRecord, OutputRecord, Payload, StreamRecord};

/// Where a subtask's processed records go.
enum Output {
    Exchange(KeyByExchange),
    Sink { writer: SinkWriter, buffer: Vec<OutputRecord>, batch_records: usize },
}

/// The operator chain of one subtask.
struct Chain {
    stateless: Vec<Stateless>,
    aggregate: Option<RunningAggregate>,
    output: Output,
}

type TaskResult = Result<(), String>;

/// Runs a subtask to completion.
pub async fn run(
    ctx: NodeContext,
    client: Rc<Client>,
    spec: TaskSpec,
    inbox: Option<mpsc::UnboundedReceiver<Delivery>>,
) -> TaskResult {
    let mut chain = Chain::build(&ctx, &client, &spec).await?;
    match (&spec.input, inbox) {
        (TaskInput::Partitions(partitions), None) => {
            let fetched = source::start(&ctx, client, partitions);
            chain.consume_log(fetched, partitions.len()).await?;
        }
        (TaskInput::Channels { upstream_parallelism, .. }, Some(inbox)) => {
            chain.consume_channels(inbox, *upstream_parallelism).await?;
        }
        _ => panic!("subtask {:?}: inbox does not match its input", spec.id),
    }
    chain.finish().await
}

impl Chain {
    async fn build(ctx: &NodeContext, client: &Rc<Client>, spec: &TaskSpec) -> Result<Self, String> {
        let stateless = spec.operators.iter().filter_map(|&k| Stateless::from_kind(k)).collect();
        let aggregate =
            spec.operators.contains(&OperatorKind::RunningAggregate).then(RunningAggregate::default);
        let batch_records = ctx.cluster.settings.batch_records;
        let output = match &spec.output {
            TaskOutput::Exchange { downstream_chain, workers } => {
                let senders = open_channels(client, spec, *downstream_chain, workers).await?;
                Output::Exchange(KeyByExchange::new(senders, batch_records))
            }
            TaskOutput::Sink => Output::Sink {
                writer: SinkWriter::new(ctx, client.clone(), spec.id.subtask),
                buffer: Vec::with_capacity(batch_records),
                batch_records,
            },
        };
        assert!(
            aggregate.is_none() || matches!(output, Output::Sink { .. }),
            "a running aggregate feeds the sink"
        );
        Ok(Chain { stateless, aggregate, output })
    }

    async fn consume_log(
        &mut self,
        mut fetched: mpsc::Receiver<source::Fetched>,
        partitions: usize,
    ) -> TaskResult {
        let mut done = 0;
        while done < partitions {
            let Some(batch) = fetched.recv().await else {
                return Err("a partition fetcher stopped before its partition ended".into());
            };
            self.process_log(&batch.records).await?;
            done += usize::from(batch.done);
        }
        Ok(())
    }

    async fn process_log(&mut self, records: &[LogRecord]) -> TaskResult {
        for r in records {
            if let Payload::Data(e) = r.payload {
                let cause = Cause { producer: r.producer, seq: r.seq };
                let record =
                    StreamRecord { key: e.key, value: e.value, event_time_ms: e.event_time_ms, cause };
                self.process(record).await?;
            }
        }
        self.flush().await
    }

    async fn consume_channels(
        &mut self,
        mut inbox: mpsc::UnboundedReceiver<Delivery>,
        upstream: u32,
    ) -> TaskResult {
        let mut credits: BTreeMap<TaskId, Tx<ChannelReply>> = BTreeMap::new();
        let mut ended = 0u32;
        while ended < upstream {
            let delivery = inbox.recv().await.expect("the worker keeps inboxes open");
            match delivery {
                Delivery::Opened { from, credit } => _ = credits.insert(from, credit),
                Delivery::Batch { from, records } => {
                    for record in records {
                        self.process(record).await?;
                    }
                    self.flush().await?;
                    let credit = credits.get(&from).expect("batch on a channel never opened");
                    _ = credit.send(ChannelReply::Credit(1)).await;
                }
                Delivery::End { .. } => ended += 1,
                Delivery::Broken { from } => {
                    return Err(format!("channel from {}.{} broke", from.chain, from.subtask))
                }
            }
        }
        Ok(())
    }

    async fn process(&mut self, record: StreamRecord) -> TaskResult {
        let Some(record) = operators::apply_all(&self.stateless, record) else { return Ok(()) };
        match (&mut self.aggregate, &mut self.output) {
            (Some(agg), Output::Sink { writer, buffer, batch_records }) => {
                buffer.push(agg.process(&record));
                if buffer.len() >= *batch_records {
                    writer.write(std::mem::take(buffer)).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            (None, Output::Exchange(exchange)) => exchange.push(record).await.map_err(|e| e.to_string()),
            _ => panic!("chain shape checked in Chain::build"),
        }
    }

    async fn flush(&mut self) -> TaskResult {
        match &mut self.output {
            Output::Exchange(exchange) => exchange.flush().await.map_err(|e| e.to_string()),
            Output::Sink { writer, buffer, .. } if !buffer.is_empty() => {
                writer.write(std::mem::take(buffer)).await.map_err(|e| e.to_string())
            }
            Output::Sink { .. } => Ok(()),
        }
    }

    async fn finish(&mut self) -> TaskResult {
        self.flush().await?;
        if let Output::Exchange(exchange) = &mut self.output {
            exchange.end().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Opens one channel to every downstream subtask, in subtask order.
async fn open_channels(
    client: &Client,
    spec: &TaskSpec,
    downstream_chain: u32,
    workers: &[u32],
) -> Result<Vec<ChannelSender>, String> {
    let mut senders = Vec::with_capacity(workers.len());
    for (subtask, &worker) in workers.iter().enumerate() {
        let to = TaskId { chain: downstream_chain, subtask: subtask as u32 };
        let addr = NodeId::new(Role::Worker, worker).addr(WORKER_DATA_PORT);
        let sender = ChannelSender::open(client, addr, spec.epoch, spec.id, to)
            .await
            .map_err(|e| format!("opening channel to {}.{}: {e}", to.chain, to.subtask))?;
        senders.push(sender);
    }
    Ok(senders)
}
