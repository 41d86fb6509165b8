//! The shared numbers of `hb_coordination::seen` against the machine's Redis (127.0.0.1:6379),
//! each test in a group of its own.

use std::time::Duration;

use hb_coordination::seen::{Lookup, Seen};
use hb_pipeline::config::Coordination;

/// The numbers of a group named after the test and this process.
fn seen(test: &str, ttl: Duration) -> Seen {
    let group = format!("seen-test-{test}-{}-{}", std::process::id(), nanos());
    let config = Coordination {
        backend_url: hb_bus::SecretUrl::new("redis://127.0.0.1:6379/0"),
        group,
        heartbeat: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
    };
    Seen::new(&config, "replays", ttl).expect("client")
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

const SEQ: u64 = 1_796_256_172_699_553;

#[tokio::test]
async fn recorded_numbers_are_found_and_the_largest_is_known() {
    let seen = seen("recorded", Duration::from_secs(60));
    let a = "samples:3:host/agent".to_owned();
    let b = "heartbeats:-:host/agent".to_owned();
    assert_eq!(
        seen.lookup(&[(a.clone(), SEQ)]).await.expect("lookup"),
        vec![Lookup {
            largest: None,
            recorded: false
        }]
    );
    seen.record(
        &[(a.clone(), SEQ), (a.clone(), SEQ + 2), (b.clone(), SEQ + 1)],
        100,
    )
    .await
    .expect("record");
    let found = seen
        .lookup(&[(a.clone(), SEQ), (a.clone(), SEQ + 1), (b.clone(), SEQ + 1)])
        .await
        .expect("lookup");
    assert_eq!(
        found,
        vec![
            Lookup {
                largest: Some(SEQ + 2),
                recorded: true
            },
            Lookup {
                largest: Some(SEQ + 2),
                recorded: false
            },
            Lookup {
                largest: Some(SEQ + 1),
                recorded: true
            },
        ],
        "exact at 2^50 and more"
    );
}

#[tokio::test]
async fn numbers_further_than_the_window_below_the_largest_are_dropped() {
    let seen = seen("window", Duration::from_secs(60));
    let key = "samples:0:h".to_owned();
    let numbers: Vec<(String, u64)> = (0..20).map(|i| (key.clone(), SEQ + i)).collect();
    seen.record(&numbers, 5).await.expect("record");
    let asked: Vec<(String, u64)> = [SEQ + 13, SEQ + 14, SEQ + 19]
        .iter()
        .map(|&n| (key.clone(), n))
        .collect();
    let found: Vec<bool> = seen
        .lookup(&asked)
        .await
        .expect("lookup")
        .iter()
        .map(|l| l.recorded)
        .collect();
    assert_eq!(found, vec![false, true, true]);
}

#[tokio::test]
async fn a_set_expires_after_its_time_to_live() {
    let seen = seen("ttl", Duration::from_millis(300));
    let key = "samples:0:h".to_owned();
    seen.record(&[(key.clone(), SEQ)], 5).await.expect("record");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let found = seen.lookup(&[(key, SEQ)]).await.expect("lookup");
    assert_eq!(found[0].largest, None);
}

#[tokio::test]
async fn an_unreachable_backend_is_an_error_not_an_answer() {
    let config = Coordination {
        backend_url: hb_bus::SecretUrl::new("redis://127.0.0.1:1/0"),
        group: "nobody".into(),
        heartbeat: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
    };
    let seen = Seen::new(&config, "replays", Duration::from_secs(60)).expect("client");
    assert!(seen.lookup(&[("k".into(), 1)]).await.is_err());
    assert!(seen.record(&[("k".into(), 1)], 5).await.is_err());
}
