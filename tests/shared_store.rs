//! Issue 17 item 4 and issue 16 (replay across replicas): state shared by
//! replicas through a real `redis-server` (started by the tests on a free
//! loopback port), the same contract as the in-memory store, and what each
//! user of the store does when Redis is down or slow.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_oauth2::store::{MemoryStore, RedisStore, SharedStore, StoreError};
use support::redis::RedisServer;

const WINDOW: Duration = Duration::from_millis(300);

/// The contract every store keeps, run against both.
async fn contract(store: &dyn SharedStore) {
    // Counters: the window starts at the first hit; later hits count in it.
    assert_eq!(store.peek("mcp_oauth2:throttle:a").await.unwrap(), None);
    let first = store.hit("mcp_oauth2:throttle:a", WINDOW).await.unwrap();
    assert_eq!(first.count, 1);
    assert!(first.resets_in <= WINDOW && first.resets_in > Duration::ZERO);
    let second = store
        .hit("mcp_oauth2:throttle:a", Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(second.count, 2);
    assert!(
        second.resets_in <= WINDOW,
        "a later hit never extends the window"
    );
    assert_eq!(
        store
            .peek("mcp_oauth2:throttle:a")
            .await
            .unwrap()
            .unwrap()
            .count,
        2
    );
    assert_eq!(
        store
            .hit("mcp_oauth2:throttle:A", WINDOW)
            .await
            .unwrap()
            .count,
        1,
        "another spelling is another key"
    );
    // Values: one winner for put_if_absent, put overwrites, delete removes.
    assert!(
        store
            .put_if_absent("mcp_oauth2:dpop:p", b"1", WINDOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_if_absent("mcp_oauth2:dpop:p", b"2", WINDOW)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get("mcp_oauth2:dpop:p").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    store
        .put("mcp_oauth2:session:s", &[0, 255, 7], WINDOW)
        .await
        .unwrap();
    store
        .put("mcp_oauth2:session:s", &[1, 2], WINDOW)
        .await
        .unwrap();
    assert_eq!(
        store.get("mcp_oauth2:session:s").await.unwrap().as_deref(),
        Some(&[1u8, 2][..])
    );
    store.delete("mcp_oauth2:session:s").await.unwrap();
    store.delete("mcp_oauth2:session:never").await.unwrap();
    assert_eq!(store.get("mcp_oauth2:session:s").await.unwrap(), None);
    // Expiry: nothing outlives its TTL or window.
    tokio::time::sleep(WINDOW + Duration::from_millis(100)).await;
    assert_eq!(store.peek("mcp_oauth2:throttle:a").await.unwrap(), None);
    assert_eq!(store.get("mcp_oauth2:dpop:p").await.unwrap(), None);
    assert!(
        store
            .put_if_absent("mcp_oauth2:dpop:p", b"3", WINDOW)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .hit("mcp_oauth2:throttle:a", WINDOW)
            .await
            .unwrap()
            .count,
        1
    );
}

#[tokio::test]
async fn memory_and_redis_stores_keep_one_contract() {
    contract(&MemoryStore::new(1000)).await;
    let redis = RedisServer::start().await;
    contract(&RedisStore::new(&redis.url()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_redis_stores_share_counters_and_first_uses() {
    let redis = RedisServer::start().await;
    let a = Arc::new(RedisStore::new(&redis.url()).unwrap());
    let b = Arc::new(RedisStore::new(&redis.url()).unwrap());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let c = store
                .hit("mcp_oauth2:throttle:x", Duration::from_secs(60))
                .await
                .unwrap();
            let first = store
                .put_if_absent("mcp_oauth2:dpop:x", b"1", Duration::from_secs(60))
                .await
                .unwrap();
            (c.count, first)
        }));
    }
    let mut counts = Vec::new();
    let mut winners = 0;
    for t in tasks {
        let (count, first) = t.await.unwrap();
        counts.push(count);
        winners += usize::from(first);
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=40).collect::<Vec<u64>>(),
        "every hit counted once"
    );
    assert_eq!(winners, 1, "one first use across replicas");
    assert_eq!(
        b.peek("mcp_oauth2:throttle:x")
            .await
            .unwrap()
            .unwrap()
            .count,
        40
    );
}

#[tokio::test]
async fn the_prefix_keeps_deployments_apart() {
    let redis = RedisServer::start().await;
    let eu = RedisStore::new(&redis.url()).unwrap().prefix("eu:");
    let us = RedisStore::new(&redis.url()).unwrap().prefix("us:");
    assert!(
        eu.put_if_absent("mcp_oauth2:dpop:k", b"1", WINDOW)
            .await
            .unwrap()
    );
    assert!(
        us.put_if_absent("mcp_oauth2:dpop:k", b"1", WINDOW)
            .await
            .unwrap()
    );
    let keys: Vec<String> = redis.dump().await.into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&"eu:mcp_oauth2:dpop:k".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"us:mcp_oauth2:dpop:k".to_owned()),
        "{keys:?}"
    );
    // A value that is no count is no counter.
    eu.put("mcp_oauth2:throttle:v", b"not a number", WINDOW)
        .await
        .unwrap();
    assert_eq!(eu.peek("mcp_oauth2:throttle:v").await.unwrap(), None);
}

#[tokio::test]
async fn redis_down_is_an_error_never_a_hang_and_recovers() {
    let mut redis = RedisServer::start().await;
    let store = RedisStore::new(&redis.url())
        .unwrap()
        .timeout(Duration::from_millis(300));
    store
        .put("mcp_oauth2:session:k", b"1", Duration::from_secs(60))
        .await
        .unwrap();
    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.get("mcp_oauth2:session:k").await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(_) | StoreError::Timeout),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "bounded");
        assert!(!err.to_string().contains("mcp_oauth2:session"), "{err}");
    }
    assert!(store.hit("mcp_oauth2:throttle:k", WINDOW).await.is_err());
    assert!(
        store
            .put_if_absent("mcp_oauth2:dpop:k", b"1", WINDOW)
            .await
            .is_err()
    );
    // Up again (empty): the store reconnects by itself.
    redis.start_again().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(v) = store.get("mcp_oauth2:session:k").await {
            assert_eq!(v, None, "a restarted Redis without persistence is empty");
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_redis_down_at_start_is_not_a_failure_to_start() {
    let mut redis = RedisServer::start().await;
    redis.stop();
    // Built without Redis: fine; each operation fails until it is up.
    let store = RedisStore::new(&redis.url())
        .unwrap()
        .timeout(Duration::from_millis(200));
    assert!(store.get("mcp_oauth2:session:k").await.is_err());
    redis.start_again().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get("mcp_oauth2:session:k").await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_slow_redis_hits_the_timeout() {
    let redis = RedisServer::start().await;
    let store = RedisStore::new(&redis.url())
        .unwrap()
        .timeout(Duration::from_millis(150));
    store
        .put("mcp_oauth2:session:k", b"1", Duration::from_secs(60))
        .await
        .unwrap();
    redis.pause(1500).await;
    let started = Instant::now();
    let err = store.get("mcp_oauth2:session:k").await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(err.to_string(), "store timed out");
}

#[test]
fn bad_urls_are_refused_without_repeating_them() {
    for url in [
        "http://127.0.0.1:6379",
        "redis://",
        "not a url",
        "rediss://:hunter2@127.0.0.1/0",
    ] {
        let err = RedisStore::new(url).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let store = RedisStore::new("redis://:hunter2@127.0.0.1:6390/0").unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("6390"), "{debug}");
    assert_eq!(RedisStore::DEFAULT_TIMEOUT, Duration::from_millis(250));
}
