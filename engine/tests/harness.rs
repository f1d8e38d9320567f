//! The operator SDK as a user sees it: typed operators over strings and structs, keyed state
//! by descriptor, timers, side outputs, and the harness — with Flink's `WindowOperatorTest`
//! shape of test: records, watermarks, a snapshot and a restore mid-stream.

use faultline_engine::sdk::operator::{Ctx, Operator, SideOutput, Timer};
use faultline_engine::sdk::{Harness, ListState, MapState, ValueState};

/// Counts and sums each key's values per tumbling window of `size_ms`, firing at the window's
/// end plus the allowed lateness.
struct TumblingSum {
    size_ms: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Reading {
    at_ms: u64,
    value: i64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct WindowSum {
    end_ms: u64,
    count: u64,
    sum: i64,
}

const SUMS: MapState<u64, (u64, i64)> = MapState::new("sums");

impl Operator for TumblingSum {
    type Key = String;
    type In = Reading;
    type OutKey = String;
    type Out = WindowSum;

    fn on_record(&self, _key: &String, r: Reading, ctx: &mut Ctx<'_, Self>) {
        let end = r.at_ms - r.at_ms % self.size_ms + self.size_ms;
        let (count, sum) = ctx.map(&SUMS).get(&end).unwrap_or_default();
        ctx.map(&SUMS).insert(&end, &(count + 1, sum + r.value));
        let at = end + ctx.allowed_lateness_ms();
        ctx.set_timer(at, end);
    }

    fn on_timer(&self, key: &String, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let end = timer.tag;
        let (count, sum) = ctx.map(&SUMS).get(&end).expect("a window's timer fires once, with its sum");
        ctx.map(&SUMS).remove(&end);
        ctx.emit(key, &WindowSum { end_ms: end, count, sum });
    }

    fn event_time(&self) -> bool {
        true
    }
}

fn reading(at_ms: u64, value: i64) -> Reading {
    Reading { at_ms, value }
}

fn sum(end_ms: u64, count: u64, sum: i64) -> WindowSum {
    WindowSum { end_ms, count, sum }
}

/// Flink's `testTumblingEventTimeWindows` shape: two keys, windows of 3 s, the watermark moved
/// in steps, a snapshot after the first window fired and a restore into a fresh operator.
#[test]
fn tumbling_windows_fire_on_the_watermark_and_survive_a_snapshot_and_restore() {
    let mut h = Harness::new(TumblingSum { size_ms: 3_000 });
    let (a, b) = ("key1".to_string(), "key2".to_string());
    h.push(&b, &reading(3_000, 1), 3_000);
    h.push(&b, &reading(3_999, 1), 3_999);
    h.push(&a, &reading(20, 1), 20);
    h.push(&a, &reading(0, 1), 0);
    h.push(&a, &reading(999, 1), 999);
    h.push(&b, &reading(1_998, 1), 1_998);
    h.push(&b, &reading(1_999, 1), 1_999);
    h.push(&b, &reading(1_000, 1), 1_000);
    h.advance_watermark(999);
    assert!(h.outputs().is_empty(), "no window ended yet");
    h.advance_watermark(2_999);
    assert!(h.outputs().is_empty(), "a window [0, 3000) fires once the watermark reaches 3000");
    h.advance_watermark(3_000);
    assert_eq!(h.outputs(), [(a.clone(), sum(3_000, 3, 3)), (b.clone(), sum(3_000, 3, 3))]);
    let snapshot = h.snapshot();
    let mut h = Harness::restore(TumblingSum { size_ms: 3_000 }, &snapshot);
    assert!(h.outputs().is_empty(), "a restored harness starts with no outputs");
    h.advance_watermark(3_999);
    assert!(h.outputs().is_empty());
    h.push(&b, &reading(5_000, 5), 5_000);
    h.advance_watermark(6_000);
    assert_eq!(h.outputs(), [(b.clone(), sum(6_000, 3, 7))]);
    h.finish();
    assert_eq!(h.outputs().len(), 1, "nothing else was open");
    assert!(h.state().entries.is_empty() && h.state().timers.is_empty(), "every window cleaned up");
}

/// A record behind the watermark by more than the lateness goes to `late`, whole, and counts
/// in no window; within the lateness it still counts.
#[test]
fn late_records_go_to_the_late_side_output() {
    let mut h = Harness::new(TumblingSum { size_ms: 1_000 }).with_lateness(500);
    let k = "k".to_string();
    h.push(&k, &reading(100, 1), 100);
    h.advance_watermark(1_200);
    h.push(&k, &reading(800, 10), 800);
    h.push(&k, &reading(600, 100), 600);
    assert_eq!(h.late(), [(k.clone(), reading(600, 100))]);
    h.advance_watermark(1_500);
    assert_eq!(h.outputs(), [(k, sum(1_000, 2, 11))]);
}

/// Flags a card seen in `limit` distinct countries within `window_ms` of event time; keeps a
/// per-card map of countries to their last time, expires entries on a timer, and counts flags.
struct Countries {
    limit: usize,
    window_ms: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Txn {
    country: String,
    at_ms: u64,
}

const SEEN: MapState<String, u64> = MapState::new("seen");
const FLAGS: ValueState<u64> = ValueState::new("flags");
const TRAIL: ListState<String> = ListState::new("trail");
const ALERTS: SideOutput<String> = SideOutput::new("alerts");

impl Operator for Countries {
    type Key = String;
    type In = Txn;
    type OutKey = String;
    type Out = u64;

    fn on_record(&self, card: &String, t: Txn, ctx: &mut Ctx<'_, Self>) {
        ctx.map(&SEEN).insert(&t.country, &t.at_ms);
        ctx.list(&TRAIL).add(t.country.clone());
        ctx.set_timer(t.at_ms + self.window_ms, 0);
        let recent = ctx.map(&SEEN).entries().iter().filter(|(_, at)| at + self.window_ms > t.at_ms).count();
        if recent >= self.limit {
            let flags = ctx.value(&FLAGS).get().unwrap_or(0) + 1;
            ctx.value(&FLAGS).set(&flags);
            ctx.emit(card, &flags);
            ctx.side(&ALERTS, &format!("{card} in {recent} countries"));
        }
    }

    fn on_timer(&self, _card: &String, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let expired: Vec<String> = ctx
            .map(&SEEN)
            .entries()
            .into_iter()
            .filter(|(_, at)| at + self.window_ms <= timer.at_ms)
            .map(|(country, _)| country)
            .collect();
        for country in expired {
            ctx.map(&SEEN).remove(&country);
        }
    }

    fn event_time(&self) -> bool {
        true
    }
}

fn txn(country: &str, at_ms: u64) -> Txn {
    Txn { country: country.into(), at_ms }
}

#[test]
fn map_value_and_list_state_and_side_outputs_are_per_key() {
    let mut h = Harness::new(Countries { limit: 3, window_ms: 600_000 });
    let (c1, c2) = ("card-1".to_string(), "card-2".to_string());
    h.push(&c1, &txn("PT", 0), 0);
    h.push(&c2, &txn("FR", 1), 1);
    h.push(&c1, &txn("ES", 60_000), 60_000);
    h.push(&c1, &txn("FR", 120_000), 120_000);
    assert_eq!(h.outputs(), [(c1.clone(), 1)]);
    assert_eq!(h.side(&ALERTS), [(c1.clone(), "card-1 in 3 countries".to_string())]);
    h.advance_watermark(660_000);
    h.push(&c1, &txn("DE", 700_000), 700_000);
    assert_eq!(h.outputs().len(), 1, "PT and ES expired at 600,000 and 660,000 ms");
    let snapshot = h.snapshot();
    let mut h = Harness::restore(Countries { limit: 3, window_ms: 600_000 }, &snapshot);
    h.push(&c1, &txn("IT", 710_000), 710_000);
    assert_eq!(h.outputs(), [(c1.clone(), 2)], "FR, DE, IT: the count came back from the snapshot");
    h.push(&c2, &txn("BE", 720_000), 720_000);
    assert!(h.outputs().len() == 1, "card-2's state is its own");
}

/// Each emit carries the provenance the engine gives it: the input it came from, or the timer.
#[test]
fn every_emit_carries_its_origin() {
    use faultline_engine::sdk::Origin;
    let mut h = Harness::new(TumblingSum { size_ms: 1_000 });
    h.push(&"k".to_string(), &reading(10, 1), 10);
    h.push(&"k".to_string(), &reading(20, 1), 20);
    h.finish();
    let e = &h.emitted()[0];
    assert_eq!(e.origin, Origin::Timer { at_ms: 1_000, tag: 1_000 });
    assert_eq!((e.n, e.cause.seq), (0, 0), "the timer's cause is the input that set it first");
}

/// Upper-cases a word in place, reading it as a view and writing the view back: what the view
/// emits decodes as the output type.
struct Shout;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Word {
    n: u32,
    text: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WordView<'a> {
    n: u32,
    #[serde(borrow)]
    text: faultline_engine::sdk::codec::Text<'a>,
}

impl faultline_engine::sdk::EncodesAs<Word> for WordView<'_> {}

/// Not a view of `Word`: its text comes first.
#[derive(serde::Serialize)]
struct Swapped<'a> {
    text: &'a str,
    n: u32,
}

impl faultline_engine::sdk::EncodesAs<Word> for Swapped<'_> {}

impl Operator for Shout {
    type Key = u32;
    type In = Word;
    type OutKey = u32;
    type Out = Word;

    fn on_record(&self, key: &u32, w: Word, ctx: &mut Ctx<'_, Self>) {
        if w.n == 0 {
            return ctx.emit_as(key, &Swapped { text: &w.text, n: w.n });
        }
        let upper = w.text.to_uppercase();
        ctx.emit_as(
            key,
            &WordView { n: w.n + 1, text: faultline_engine::sdk::codec::Text(upper.as_bytes()) },
        );
    }

    fn event_time(&self) -> bool {
        false
    }
}

#[test]
fn a_view_of_the_output_emits_what_the_output_would() {
    let mut h = Harness::new(Shout);
    h.push(&1, &Word { n: 1, text: "card-7 in Lisbon".into() }, 0);
    assert_eq!(h.outputs(), [(1, Word { n: 2, text: "CARD-7 IN LISBON".into() })]);
}

#[test]
#[cfg(debug_assertions)]
fn a_view_that_does_not_encode_as_the_output_is_caught_in_debug_builds() {
    let caught = std::panic::catch_unwind(|| {
        Harness::new(Shout).push(&1, &Word { n: 0, text: "longer than a varint".into() }, 0);
    });
    let payload = caught.expect_err("a view whose encoding is not a Word's");
    let message = payload.downcast_ref::<String>().map(String::as_str).unwrap_or_default();
    assert!(message.contains("Swapped") && message.contains("does not encode as"), "{message}");
}
