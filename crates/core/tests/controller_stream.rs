//! Random event sequences through the controller's stream table: an event the
//! table refuses changes nothing, an accepted one follows a listed transition,
//! and the stream's positions keep their invariants.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use statesync_core::sync::controller::{
    ControllerStream, Event, HeldKey, Hello, LogBounds, ProtocolError, ReportedDigest, StreamState,
    SyncSettings, TRANSITIONS,
};

/// One thing that can happen to a stream; revisions are small so that
/// legal and illegal values both come up often.
#[derive(Clone, Debug)]
enum Step {
    Hello {
        from_rev: i64,
        observer: bool,
        anonymous: bool,
        stale: bool,
        head_rev: i64,
        compacted_rev: i64,
    },
    SlotGranted,
    SnapshotSent(i64),
    ReconcileSent(i64),
    FellBehind,
    ContractChanged,
    BatchSent {
        prev_offset: i64,
        span: i64,
        changes: u64,
    },
    Skipped(i64),
    ProgressSent,
    QueueNoticeSent,
    Ack(i64),
    Nack,
    Heard,
    DriftFound,
    QuerySent(u64),
    Answered(u64),
    DescentEnded,
    RepairSent,
    RepairChecked(u64, bool),
    Close,
    Wait(u64),
}

impl Step {
    /// The table's event for this step on `stream` (None: time passing, not an event).
    fn event(&self, stream: &ControllerStream) -> Option<Event> {
        Some(match self {
            Self::Answered(id) if stream.awaited_answer() == Some(*id) => Event::Answered,
            Self::Answered(_) => Event::Heard,
            Self::DriftFound => Event::DriftFound,
            Self::QuerySent(_) => Event::QuerySent,
            Self::DescentEnded => Event::DescentEnded,
            Self::RepairSent => Event::RepairSent,
            Self::RepairChecked(..) => Event::RepairChecked,
            Self::Hello { .. } => Event::Hello,
            Self::SlotGranted => Event::SlotGranted,
            Self::SnapshotSent(_) => Event::SnapshotSent,
            Self::ReconcileSent(_) => Event::ReconcileSent,
            Self::FellBehind => Event::FellBehind,
            Self::ContractChanged => Event::ContractChanged,
            Self::BatchSent { .. } | Self::Skipped(_) | Self::ProgressSent => Event::Sent,
            Self::QueueNoticeSent => Event::QueueNoticeSent,
            Self::Ack(_) | Self::Nack | Self::Heard => Event::Heard,
            Self::Close => Event::Close,
            Self::Wait(_) => return None,
        })
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            -1i64..12,
            any::<bool>(),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.2),
            0i64..12,
            0i64..6
        )
            .prop_map(
                |(from_rev, observer, anonymous, stale, head_rev, compacted_rev)| Step::Hello {
                    from_rev,
                    observer,
                    anonymous,
                    stale,
                    head_rev: head_rev.max(compacted_rev),
                    compacted_rev,
                }
            ),
        Just(Step::SlotGranted),
        (0i64..40).prop_map(Step::SnapshotSent),
        (0i64..40).prop_map(Step::ReconcileSent),
        Just(Step::FellBehind),
        Just(Step::ContractChanged),
        (-1i64..2, 0i64..4, 0u64..5).prop_map(|(prev_offset, span, changes)| Step::BatchSent {
            prev_offset,
            span,
            changes
        }),
        (0i64..40).prop_map(Step::Skipped),
        Just(Step::ProgressSent),
        Just(Step::QueueNoticeSent),
        (-1i64..40).prop_map(Step::Ack),
        Just(Step::Nack),
        Just(Step::Heard),
        Just(Step::DriftFound),
        (0u64..4).prop_map(Step::QuerySent),
        (0u64..4).prop_map(Step::Answered),
        Just(Step::DescentEnded),
        Just(Step::RepairSent),
        (0u64..4, any::<bool>()).prop_map(|(id, agrees)| Step::RepairChecked(id, agrees)),
        Just(Step::Close),
        (0u64..3000).prop_map(Step::Wait),
    ]
}

fn apply(stream: &mut ControllerStream, step: &Step, now: &mut Duration) -> Result<(), ProtocolError> {
    let at = *now;
    match step {
        Step::Hello {
            from_rev,
            observer,
            anonymous,
            stale,
            head_rev,
            compacted_rev,
        } => {
            let hello = Hello {
                worker_id: if *anonymous {
                    String::new()
                } else {
                    "w1".to_owned()
                },
                namespaces: ["routes".to_owned()].into(),
                from_rev: *from_rev,
                observer: *observer,
                deltas: false,
                held: vec![HeldKey::from_peer("routes", "k", 1, "refused", b"")],
                stale_versions: if *stale {
                    vec!["routes v1".to_owned()]
                } else {
                    vec![]
                },
            };
            let bounds = LogBounds {
                head_rev: *head_rev,
                compacted_rev: *compacted_rev,
            };
            stream.hello(hello, bounds, at)
        }
        Step::SlotGranted => stream.slot_granted(),
        Step::SnapshotSent(rev) => stream.snapshot_sent(*rev, at),
        Step::ReconcileSent(rev) => stream.reconcile_sent(*rev, at),
        Step::FellBehind => stream.fell_behind("fell behind"),
        Step::ContractChanged => stream.contract_changed("now served in v2"),
        Step::BatchSent {
            prev_offset,
            span,
            changes,
        } => {
            let prev_rev = stream.sent_rev() + prev_offset;
            stream.batch_sent(prev_rev, prev_rev + span, *changes, at)
        }
        Step::Skipped(rev) => stream.skipped(*rev),
        Step::ProgressSent => stream.progress_sent(at).map(drop),
        Step::QueueNoticeSent => stream.queue_notice_sent(at),
        Step::Ack(rev) => {
            let digests = BTreeMap::from([(
                "routes".to_owned(),
                ReportedDigest {
                    root: vec![1; 32],
                    count: 1,
                },
            )]);
            stream.ack(*rev, digests, vec![], at)
        }
        Step::Nack => stream.nack(HeldKey::from_peer("routes", "k", 2, "bad", b""), at),
        Step::Heard => stream.heard(at),
        Step::DriftFound => stream.drift_found("routes"),
        Step::QuerySent(id) => stream.query_sent(*id, at),
        Step::Answered(id) => stream.answered(*id, at).map(drop),
        Step::DescentEnded => stream.descent_ended(),
        Step::RepairSent => stream.repair_sent(at).map(drop),
        Step::RepairChecked(id, agrees) => stream.repair_checked(*id, *agrees).map(drop),
        Step::Close => {
            stream.close();
            Ok(())
        }
        Step::Wait(ms) => {
            *now += Duration::from_millis(*ms);
            Ok(())
        }
    }
}

fn check_invariants(stream: &ControllerStream) {
    assert!(stream.sent_rev() <= stream.cursor(), "{stream:?}");
    let unacked: Vec<i64> = stream.unacked_revs().collect();
    assert!(unacked.windows(2).all(|w| w[0] < w[1]), "{unacked:?}");
    assert!(
        unacked
            .iter()
            .all(|&rev| rev > stream.acked_rev() && rev <= stream.sent_rev())
    );
    assert_eq!(unacked.is_empty(), stream.buffered() == 0);
    match stream.state() {
        StreamState::ResyncDue | StreamState::Snapshotting => assert!(stream.resync().is_some()),
        _ => assert!(stream.resync().is_none()),
    }
    // A descent exists exactly in the descent states.
    let descending = matches!(
        stream.state(),
        StreamState::Localizing | StreamState::AwaitingAnswer | StreamState::Verifying
    );
    assert_eq!(stream.descent().is_some(), descending, "{stream:?}");
    if stream.state() == StreamState::Tailing {
        assert!(stream.acked_rev() <= stream.sent_rev(), "{stream:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_events_follow_the_table(steps in prop::collection::vec(step(), 1..60)) {
        let settings = SyncSettings { window: 8, ..SyncSettings::default() };
        let mut now = Duration::ZERO;
        let mut stream = ControllerStream::new(settings, now);
        for step in &steps {
            let before = stream.clone();
            let result = apply(&mut stream, step, &mut now);
            match (result, step.event(&before)) {
                (Err(_), _) => prop_assert_eq!(&stream, &before, "a refused {:?} changed the stream", step),
                (Ok(()), Some(event)) => prop_assert!(
                    TRANSITIONS.contains(&(before.state(), event, stream.state())),
                    "{:?} moved {} to {}, which the table does not list", step, before.state(), stream.state()
                ),
                (Ok(()), None) => prop_assert_eq!(stream.state(), before.state()),
            }
            if let Some(event) = step.event(&before) {
                let listed = TRANSITIONS.iter().any(|&(from, on, _)| from == before.state() && on == event);
                if !listed {
                    prop_assert_eq!(&stream, &before, "{:?} is not in the table for {}", step, before.state());
                }
            }
            prop_assert!(stream.acked_rev() >= before.acked_rev() || before.state() == StreamState::AwaitingHello);
            check_invariants(&stream);
        }
    }
}
