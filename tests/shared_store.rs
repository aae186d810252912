//! Issue 17 item 4 and issue 16 (replay across replicas): state shared by
//! replicas through a real `redis-server` (started by the tests on a free
//! loopback port), the same contract as the in-memory store, and what each
//! user of the store does when Redis is down or slow.
// Test code: a panic here is a failed run, not an outage, so unwrap and
// indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_oauth2::store::{MemoryStore, RedisStore, SharedStore, StoreError};
use support::redis::{RedisServer, ReplyDroppingProxy};

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

/// A store on `redis` with this operation timeout, holding
/// `mcp_oauth2:session:k` = `1` for a minute.
async fn holding_k(redis: &RedisServer, timeout: Duration) -> RedisStore {
    let store = RedisStore::new(&redis.url()).unwrap().timeout(timeout);
    store
        .put("mcp_oauth2:session:k", b"1", Duration::from_secs(60))
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn redis_down_is_an_error_never_a_hang_and_recovers() {
    let mut redis = RedisServer::start().await;
    let store = holding_k(&redis, Duration::from_millis(300)).await;
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

// What the operator reads when Redis cannot be used says why: a password
// Redis refuses is "authentication failed", a port where nothing listens an
// I/O error, never "store timed out" (what both were: the connection was
// retried until the operation's deadline), and never the password.
#[tokio::test]
async fn a_refused_password_or_a_closed_port_is_named_not_a_timeout() {
    let redis = RedisServer::start().await;
    redis
        .command(&["CONFIG", "SET", "requirepass", "right-password"])
        .await;
    let port = redis.url().rsplit(':').next().unwrap().to_owned();
    let port = port.trim_end_matches("/0");
    let wrong = RedisStore::new(&format!("redis://:wrong-password@127.0.0.1:{port}/0"))
        .unwrap()
        .timeout(Duration::from_millis(500));
    let err = wrong.get("mcp_oauth2:session:k").await.unwrap_err();
    assert!(err.to_string().contains("authentication"), "{err}");
    assert!(!err.to_string().contains("password"), "{err}");
    // The same in RESP3 (`WRONGPASS`) and without a password (`NOAUTH`):
    // found from outside logged as extension errors.
    for url in [
        format!("redis://:wrong-password@127.0.0.1:{port}/0?protocol=resp3"),
        format!("redis://127.0.0.1:{port}/0"),
        format!("redis://127.0.0.1:{port}/0?protocol=resp3"),
    ] {
        let store = RedisStore::new(&url)
            .unwrap()
            .timeout(Duration::from_millis(500));
        let err = store.get("mcp_oauth2:session:k").await.unwrap_err();
        assert!(
            err.to_string().contains("authentication failed"),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("password"), "{err}");
    }
    let right = RedisStore::new(&format!("redis://:right-password@127.0.0.1:{port}/0"))
        .unwrap()
        .timeout(Duration::from_millis(500));
    assert_eq!(right.get("mcp_oauth2:session:k").await.unwrap(), None);
    // A database the server does not have: named as the URL's fault (found
    // from outside: `redis: response error`).
    let no_db = RedisStore::new(&format!("redis://:right-password@127.0.0.1:{port}/99"))
        .unwrap()
        .timeout(Duration::from_millis(500));
    let err = no_db.get("mcp_oauth2:session:k").await.unwrap_err();
    assert!(err.to_string().contains("database number"), "{err}");

    let closed = support::reference::free_port();
    let down = RedisStore::new(&format!("redis://127.0.0.1:{closed}/0"))
        .unwrap()
        .timeout(Duration::from_millis(500));
    let err = down.get("mcp_oauth2:session:k").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

// A counter without an expiry was not written by a window (every window
// sets one): planted in Redis, it held an address throttled for good (found
// from outside, `SET mcp_oauth2:throttle:addr:<ip> 999`). It is no window
// to `peek`, and the next `hit` starts a fresh one over it.
#[tokio::test]
async fn a_counter_without_an_expiry_is_no_window() {
    let redis = RedisServer::start().await;
    let store = RedisStore::new(&redis.url()).unwrap();
    let key = "mcp_oauth2:throttle:addr:192.0.2.30";
    assert_eq!(
        redis.command(&["SET", key, "999"]).await.as_deref(),
        Some("+OK")
    );
    assert_eq!(store.peek(key).await.unwrap(), None);
    let window = store.hit(key, Duration::from_secs(60)).await.unwrap();
    assert_eq!(window.count, 1);
    assert!(window.resets_in > Duration::from_secs(50), "{window:?}");
    let peeked = store.peek(key).await.unwrap().unwrap();
    assert_eq!(peeked.count, 1);
    // Nor one with an expiry past the window (a year), nor a string that
    // is no count (a negative one let failures through uncounted): the
    // next `hit` starts a fresh window over each.
    for planted in [
        ["999", "EX", "31536000"],
        ["-1000", "EX", "60"],
        ["x", "EX", "60"],
    ] {
        let mut args = vec!["SET", key];
        args.extend(planted);
        assert_eq!(redis.command(&args).await.as_deref(), Some("+OK"));
        let window = store.hit(key, Duration::from_secs(60)).await.unwrap();
        assert_eq!(window.count, 1, "{planted:?}");
        assert!(window.resets_in <= Duration::from_secs(60), "{planted:?}");
    }
}

/// Sends `lines` (inline Redis commands) on one connection to the Redis on
/// `port` and returns what it answered (an `AUTH` then a command needs one
/// connection).
async fn inline(port: u16, lines: &[&str]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut text = lines.join("\r\n");
    text.push_str("\r\nQUIT\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut answer)).await;
    answer
}

// A failed handshake is not for good (found from outside: the `redis`
// crate's connection manager connects again only after an I/O error, so a
// refused login or a reply in another protocol was answered to every
// operation until the process restarted). A password rotated in the usual
// order (the replica first, then Redis), a Redis restarted with another
// password under a working replica, and something else on the port before
// Redis: each store works again within a second of Redis being right.
#[tokio::test]
async fn a_failed_handshake_is_retried_once_redis_is_right() {
    let mut redis = RedisServer::start().await;
    let port = redis.port();
    redis
        .command(&["CONFIG", "SET", "requirepass", "old-password"])
        .await;
    // The replica already has the new password: refused.
    let store = RedisStore::new(&format!("redis://:new-password@127.0.0.1:{port}/0"))
        .unwrap()
        .timeout(Duration::from_millis(500));
    let err = store.get("mcp_oauth2:session:k").await.unwrap_err();
    assert!(err.to_string().contains("authentication"), "{err}");
    // Redis takes the new password.
    let answer = inline(
        port,
        &["AUTH old-password", "CONFIG SET requirepass new-password"],
    )
    .await;
    assert!(answer.starts_with("+OK\r\n+OK"), "{answer:?}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(store.get("mcp_oauth2:session:k").await.unwrap(), None);

    // A working store; Redis restarts with another password (the store's
    // reconnection fails its handshake), then takes the store's again.
    redis.stop();
    redis.start_again().await;
    redis
        .command(&["CONFIG", "SET", "requirepass", "other-password"])
        .await;
    assert!(store.get("mcp_oauth2:session:k").await.is_err());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(store.get("mcp_oauth2:session:k").await.is_err());
    let answer = inline(
        port,
        &["AUTH other-password", "CONFIG SET requirepass new-password"],
    )
    .await;
    assert!(answer.starts_with("+OK\r\n+OK"), "{answer:?}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(store.get("mcp_oauth2:session:k").await.unwrap(), None);
    drop(redis);

    // Something that is not Redis on the port, then Redis.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let garbage = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .timeout(Duration::from_millis(500));
    assert!(store.get("mcp_oauth2:session:k").await.is_err());
    garbage.abort();
    let _ = garbage.await;
    let _redis = RedisServer::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(store.get("mcp_oauth2:session:k").await.unwrap(), None);
}

// The reference server with a password Redis refuses says so as it starts,
// before any request (found from outside: the first request that needed
// the store was where it showed, as a 503), naming the cause, never the
// password; with the right password it says nothing of the kind.
#[tokio::test]
async fn a_refused_redis_password_is_told_at_start_up() {
    let redis = RedisServer::start().await;
    redis
        .command(&["CONFIG", "SET", "requirepass", "right-password"])
        .await;
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let url = |password: &str| format!("redis://:{password}@127.0.0.1:{}/0", redis.port());
    for (password, told) in [("wrong-password", true), ("right-password", false)] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let redis_url = url(password);
        let server = support::reference::start(
            port,
            &[
                ("MCP_OAUTH2_ISSUER", issuer.issuer()),
                ("MCP_OAUTH2_RESOURCE", &resource),
                ("MCP_OAUTH2_REDIS_URL", &redis_url),
                ("RUST_LOG", "warn"),
            ],
        )
        .await;
        // No request at all; the line comes within the store's timeout.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (mut child, lines) = server.gather();
        child.kill().await.unwrap();
        let lines = lines.await.unwrap();
        let line = lines.iter().find(|l| l.contains("store_unavailable"));
        assert_eq!(line.is_some(), told, "{password}: {lines:?}");
        if let Some(line) = line {
            assert!(line.contains("authentication"), "{line}");
            assert!(line.contains("at start-up"), "{line}");
        }
        assert!(
            lines.iter().all(|l| !l.contains("password")),
            "{password}: {lines:?}"
        );
    }
}

// An ACL that refuses what the store needs (`EVAL`, or keys outside its
// pattern: a prefix that does not match it) is named by Redis' code
// (found from outside: logged `redis: `, no cause at all).
#[tokio::test]
async fn an_acl_refusal_is_named() {
    let redis = RedisServer::start().await;
    for args in [
        &[
            "ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-eval",
        ][..],
        &[
            "ACL",
            "SETUSER",
            "keyed",
            "on",
            ">pw",
            "~tenant1:*",
            "+@all",
        ][..],
    ] {
        assert_eq!(redis.command(args).await.as_deref(), Some("+OK"));
    }
    let port = redis.url().rsplit(':').next().unwrap().to_owned();
    let port = port.trim_end_matches("/0");
    for user in ["noeval", "keyed"] {
        let store = RedisStore::new(&format!("redis://{user}:pw@127.0.0.1:{port}/0"))
            .unwrap()
            .timeout(Duration::from_millis(500));
        let err = store
            .hit("mcp_oauth2:throttle:k", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("(NOPERM)"), "{user}: {err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}

// After an outage longer than the connection's own retries, the first
// operation once Redis is back is served (it was refused: the failed
// connection answered it, and only then started to reconnect), so a replica
// does not answer one more 503 per store user after Redis recovered.
#[tokio::test]
async fn the_first_operation_after_an_outage_is_served() {
    let mut redis = RedisServer::start().await;
    let store = holding_k(&redis, Duration::from_millis(300)).await;
    redis.stop();
    for _ in 0..3 {
        assert!(store.get("mcp_oauth2:session:k").await.is_err());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again().await;
    assert_eq!(store.get("mcp_oauth2:session:k").await.unwrap(), None);
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
    let store = holding_k(&redis, Duration::from_millis(150)).await;
    redis.pause(1500).await;
    let started = Instant::now();
    let err = store.get("mcp_oauth2:session:k").await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(err.to_string(), "store timed out");
}

// A Redis that stops answering (SIGSTOP: a hung host, a partition; the
// kernel still takes connections and commands) is not waited for on every
// operation. After a timeout the next operation probes on a new
// connection; once that times out too, the others fail at once for the
// cooldown (1 s, doubling to 5 s), naming why. Before, each of the twelve
// operations here waited its whole timeout. Once Redis answers again, a
// probe after the cooldown finds it and the store serves what it kept.
#[tokio::test]
async fn a_frozen_redis_costs_a_timeout_per_cooldown_not_one_per_operation() {
    let redis = RedisServer::start().await;
    let store = holding_k(&redis, Duration::from_millis(200)).await;
    redis.freeze();
    let (mut timeouts, mut refused) = (0, 0);
    for _ in 0..12 {
        match store.get("mcp_oauth2:session:k").await {
            Err(StoreError::Timeout) => timeouts += 1,
            Err(StoreError::Unavailable(why)) => {
                assert!(why.contains("not answering"), "{why}");
                assert!(!why.contains("mcp_oauth2:session"), "{why}");
                refused += 1;
            }
            other => panic!("frozen, yet {other:?}"),
        }
    }
    // The first operation and its probe; a machine slow enough to pass the
    // first cooldown between two operations gives one more probe.
    assert!((2..=3).contains(&timeouts), "{timeouts} timeouts");
    assert_eq!(refused, 12 - timeouts);
    // Writes have their breaker: a write and its probe time out, then
    // writes are refused at once too (nothing is queued for later).
    for expected in ["timeout", "timeout", "refused", "refused"] {
        let got = match store.put_if_absent("mcp_oauth2:dpop:k", b"1", WINDOW).await {
            Err(StoreError::Timeout) => "timeout",
            Err(StoreError::Unavailable(why)) if why.contains("not answering") => "refused",
            other => panic!("frozen, yet {other:?}"),
        };
        assert_eq!(got, expected);
    }
    redis.thaw();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.get("mcp_oauth2:session:k").await {
            Ok(value) => {
                assert_eq!(value, Some(b"1".to_vec()), "what it kept");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never answered again: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes too, once their cooldown has passed; then closed again: the
    // next operations are served, one after another.
    while store.hit("mcp_oauth2:throttle:k", WINDOW).await.is_err() {
        assert!(Instant::now() < deadline, "writes never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..3 {
        assert!(store.hit("mcp_oauth2:throttle:k", WINDOW).await.is_ok());
    }
}

// Found from outside: a Redis that answers reads but not writes (`CLIENT
// PAUSE .. WRITE`, what a failover does) kept every write waiting its whole
// timeout, since the probe after a timed-out write was the next operation,
// a read, whose answer closed the breaker again: each DPoP proof waited
// 250 ms before its 503. Reads and writes now have a breaker each.
#[tokio::test]
async fn a_redis_answering_reads_but_not_writes_cools_the_writes_down() {
    let redis = RedisServer::start().await;
    let store = holding_k(&redis, Duration::from_millis(200)).await;
    let answer = redis.command(&["CLIENT", "PAUSE", "4000", "WRITE"]).await;
    assert_eq!(answer.as_deref(), Some("+OK"));
    let (mut timeouts, mut refused) = (0, 0);
    for i in 0..12 {
        // Reads are served all along.
        assert_eq!(
            store.get("mcp_oauth2:session:k").await.unwrap(),
            Some(b"1".to_vec())
        );
        match store
            .put_if_absent(&format!("mcp_oauth2:dpop:{i}"), b"1", WINDOW)
            .await
        {
            Err(StoreError::Timeout) => timeouts += 1,
            Err(StoreError::Unavailable(why)) if why.contains("not answering") => refused += 1,
            other => panic!("writes paused, yet {other:?}"),
        }
    }
    assert!((2..=3).contains(&timeouts), "{timeouts} timeouts");
    assert_eq!(refused, 12 - timeouts);
    let _ = redis.command(&["CLIENT", "UNPAUSE"]).await;
}

// Found from outside: a Redis that is down (connections refused) cost
// every store operation the client's reconnection attempts, about 60 ms
// (two operations, 120 ms, on every throttled request), for as long as it
// stayed down. A lost or refused connection is now an outage like a
// timeout: after a probe, operations fail at once; once Redis is back, a
// probe after the cooldown finds it.
#[tokio::test]
async fn a_redis_that_is_down_is_not_asked_on_every_operation() {
    let mut redis = RedisServer::start().await;
    let store = holding_k(&redis, Duration::from_millis(300)).await;
    redis.stop();
    let (mut asked, mut refused) = (0, 0);
    for _ in 0..12 {
        match store.get("mcp_oauth2:session:k").await {
            Err(StoreError::Unavailable(why)) if why.contains("not answering") => refused += 1,
            Err(_) => asked += 1,
            Ok(v) => panic!("down, yet {v:?}"),
        }
    }
    assert!((2..=3).contains(&asked), "{asked} operations asked Redis");
    assert_eq!(refused, 12 - asked);
    redis.start_again().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.get("mcp_oauth2:session:k").await.is_err() {
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// A write whose reply was lost (the command ran, then the connection
// dropped) is retried once on the new connection; the retry must not apply
// it a second time. Before the fix, `put_if_absent` found its own write and
// answered "already present" (a fresh DPoP proof refused as `dpop_replay`),
// and `hit` counted one failure twice.
#[tokio::test]
async fn a_write_retried_after_its_reply_was_lost_is_applied_once() {
    let redis = RedisServer::start().await;
    let proxy = ReplyDroppingProxy::start(redis.port()).await;
    let store = RedisStore::new(&proxy.url())
        .unwrap()
        .timeout(Duration::from_secs(3));
    // Connected (the handshake is not what is lost).
    assert_eq!(store.get("mcp_oauth2:session:warm").await.unwrap(), None);

    proxy.drop_reply_to("mcp_oauth2:dpop:fresh");
    let first = store
        .put_if_absent("mcp_oauth2:dpop:fresh", b"1", Duration::from_secs(60))
        .await;
    assert_eq!(proxy.dropped(), 1, "the reply was lost");
    assert!(
        first.unwrap(),
        "the first use of a key is stored, even when its reply was lost"
    );
    // A real second use is still refused, on this store and another.
    assert!(
        !store
            .put_if_absent("mcp_oauth2:dpop:fresh", b"1", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let direct = RedisStore::new(&redis.url()).unwrap();
    assert!(
        !direct
            .put_if_absent("mcp_oauth2:dpop:fresh", b"1", Duration::from_secs(60))
            .await
            .unwrap()
    );

    proxy.drop_reply_to("mcp_oauth2:throttle:lost");
    let hit = store
        .hit("mcp_oauth2:throttle:lost", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(proxy.dropped(), 2, "the reply was lost");
    assert_eq!(hit.count, 1, "one hit is counted once");
    assert_eq!(
        direct
            .peek("mcp_oauth2:throttle:lost")
            .await
            .unwrap()
            .unwrap()
            .count,
        1
    );
    assert_eq!(
        store
            .hit("mcp_oauth2:throttle:lost", Duration::from_secs(60))
            .await
            .unwrap()
            .count,
        2
    );
}

// docs/security-model.md, "Shared state across replicas": Redis runs with
// `maxmemory-policy noeviction`, so a full Redis refuses writes (`OOM`)
// rather than forgetting used proofs: the store answers an error that names
// the cause (the callers fail closed), never "stored", and what it holds
// is kept.
#[tokio::test]
async fn a_full_redis_under_noeviction_refuses_writes_and_forgets_nothing() {
    let redis = RedisServer::start().await;
    let store = RedisStore::new(&redis.url()).unwrap();
    assert!(
        store
            .put_if_absent("mcp_oauth2:dpop:used", b"1", Duration::from_secs(60))
            .await
            .unwrap()
    );
    for (name, value) in [("maxmemory-policy", "noeviction"), ("maxmemory", "1")] {
        assert_eq!(
            redis
                .command(&["CONFIG", "SET", name, value])
                .await
                .as_deref(),
            Some("+OK")
        );
    }
    let err = store
        .put_if_absent("mcp_oauth2:dpop:fresh", b"1", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "store unavailable: redis: extension error (OOM)"
    );
    let err = store
        .put_if_absent("mcp_oauth2:dpop:used", b"1", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        store
            .hit("mcp_oauth2:throttle:full", Duration::from_secs(60))
            .await
            .is_err()
    );
    assert_eq!(
        store.get("mcp_oauth2:dpop:used").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
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

// ---------------------------------------------------------------------
// Two replicas of one server (one resource, two listeners) sharing Redis.
// ---------------------------------------------------------------------

use std::net::SocketAddr;

use mcp_oauth2::testing::{DpopClient, TestIssuer};
use mcp_oauth2::verify::IntrospectionSettings;
use mcp_oauth2::{AuthConfig, AuthConfigBuilder, McpServer, Metrics};
use support::attack::{INITIALIZED, LEGACY, initialize_body, tool_call_body};
use support::fixture::EchoServer;
use tokio_util::sync::CancellationToken;

/// One replica: a real `McpServer` on its own port, configured for the
/// shared resource URI, with its own `RedisStore` (as another process).
struct Replica {
    addr: SocketAddr,
    metrics: Metrics,
    ct: CancellationToken,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

impl Replica {
    async fn start(
        listener: tokio::net::TcpListener,
        resource: &str,
        issuer: &TestIssuer,
        store: Arc<dyn SharedStore>,
        tweak: fn(AuthConfigBuilder) -> AuthConfigBuilder,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let config = tweak(
            AuthConfig::builder()
                .issuer(issuer.issuer())
                .resource(resource)
                .allow_insecure_http_for_loopback(true),
        )
        .build()
        .unwrap();
        let server = McpServer::builder()
            .auth(config)
            .shared_store(store)
            .service(|| Ok(EchoServer::new()))
            .build()
            .unwrap();
        let metrics = server.metrics();
        let ct = server.cancellation_token();
        tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        Self { addr, metrics, ct }
    }

    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    fn rejected(&self, reason: &str) -> u64 {
        self.metrics
            .snapshot()
            .rejected
            .get(reason)
            .copied()
            .unwrap_or(0)
    }
}

/// Redis, an issuer, and two replicas A and B of the resource served at A.
struct Pair {
    redis: RedisServer,
    issuer: TestIssuer,
    resource: String,
    a: Replica,
    b: Replica,
}

impl Pair {
    async fn start(timeout: Duration, tweak: fn(AuthConfigBuilder) -> AuthConfigBuilder) -> Self {
        let redis = RedisServer::start().await;
        let issuer = TestIssuer::start().await.unwrap();
        let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let resource = format!("http://{}/mcp", la.local_addr().unwrap());
        let store = || -> Arc<dyn SharedStore> {
            Arc::new(RedisStore::new(&redis.url()).unwrap().timeout(timeout))
        };
        let a = Replica::start(la, &resource, &issuer, store(), tweak).await;
        let b = Replica::start(lb, &resource, &issuer, store(), tweak).await;
        Self {
            redis,
            issuer,
            resource,
            a,
            b,
        }
    }

    fn token(&self, sub: &str) -> String {
        self.issuer
            .token()
            .subject(sub)
            .audience(&self.resource)
            .sign()
    }
}

/// A POST of a JSON-RPC `body` with `Authorization: <auth>` and, when
/// given, a legacy session.
async fn post(url: &str, auth: &str, session: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", auth)
        .body(body.to_owned());
    if let Some(id) = session {
        req = req
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", LEGACY);
    }
    req.send().await.unwrap()
}

/// A legacy session opened on `url` with `token`: `initialize`, then
/// `notifications/initialized`.
async fn open_session(url: &str, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let response = post(url, &auth, None, &initialize_body(1)).await;
    assert_eq!(response.status(), 200);
    let id = response
        .headers()
        .get("mcp-session-id")
        .expect("a legacy session")
        .to_str()
        .unwrap()
        .to_owned();
    let done = post(url, &auth, Some(&id), INITIALIZED).await;
    assert!(done.status().is_success(), "{}", done.status());
    id
}

/// A `tools/call` of `whoami` inside `session`.
async fn call_in(url: &str, token: &str, session: &str) -> reqwest::Response {
    post(
        url,
        &format!("Bearer {token}"),
        Some(session),
        &tool_call_body(2, "whoami"),
    )
    .await
}

/// A `DELETE` of `session`, the client ending it.
async fn end_session(url: &str, token: &str, session: &str) -> reqwest::Response {
    reqwest::Client::new()
        .delete(url)
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", LEGACY)
        .send()
        .await
        .unwrap()
}

/// The JSON body's `reason` of a refusal.
async fn reason(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["reason"].as_str().unwrap_or_default().to_owned()
}

/// A legacy GET event stream of `session` on `url`, held open while the
/// response lives.
async fn open_event_stream(url: &str, token: &str, session: &str) -> reqwest::Response {
    let stream = support::attack::legacy_event_stream(url, token, session).await;
    assert_eq!(stream.status(), 200);
    stream
}

// Work that outlasts the idle timeout keeps its session's binding in the
// store (found from outside: a client listening on its event stream past
// the timeout found its binding expired, and its next call was 404 on
// its replica while the stream was still open). The binding then lasts
// one idle timeout from the stream's end, as the local clock does; and a
// binding removed by a DELETE on the other replica stays removed while the
// stream is open (kept alive only where it still names its owner).
#[tokio::test]
async fn an_open_event_stream_keeps_its_sessions_binding_in_the_store() {
    let pair = Pair::start(RedisStore::DEFAULT_TIMEOUT, |b| {
        b.session_idle_timeout(Duration::from_millis(1_200))
    })
    .await;
    let alice = pair.token("alice");
    let session = open_session(&pair.a.url(), &alice).await;
    let key = hashed_key("session", &session);
    let stream = open_event_stream(&pair.a.url(), &alice, &session).await;
    let bound = || async {
        pair.redis
            .command(&["GET", &key])
            .await
            .is_some_and(|r| r.starts_with('$') && r != "$-1")
    };
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert!(bound().await, "the binding lapsed under an open stream");
    assert_eq!(call_in(&pair.a.url(), &alice, &session).await.status(), 200);
    // The stream ends: the binding lasts one idle timeout from then (the
    // call above restarted it too).
    drop(stream);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(bound().await);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!bound().await, "the binding outlived its idle timeout");
    assert_eq!(call_in(&pair.a.url(), &alice, &session).await.status(), 404);

    // Ended through B while A holds its stream: not brought back.
    let bob = pair.token("bob");
    let session = open_session(&pair.a.url(), &bob).await;
    let key = hashed_key("session", &session);
    let stream = open_event_stream(&pair.a.url(), &bob, &session).await;
    let deleted = end_session(&pair.b.url(), &bob, &session).await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        pair.redis.command(&["GET", &key]).await.as_deref(),
        Some("$-1")
    );
    assert_eq!(call_in(&pair.b.url(), &bob, &session).await.status(), 404);
    drop(stream);
}

// A session ended on the other replica (a DELETE routed there) is gone
// from the store: the replica that created it forgets and closes it at its
// owner's next request, freeing the owner's slot (found from outside: the
// slot stayed taken, and each refused call kept the session's idle clock
// going, so the owner could open no new session).
#[tokio::test]
async fn a_session_deleted_on_the_other_replica_frees_its_slot() {
    let pair = Pair::start(RedisStore::DEFAULT_TIMEOUT, |b| {
        b.max_sessions_per_principal(1)
    })
    .await;
    let alice = pair.token("alice");
    let session = open_session(&pair.a.url(), &alice).await;
    assert_eq!(call_in(&pair.a.url(), &alice, &session).await.status(), 200);
    // At her cap: a second session is refused.
    let auth = format!("Bearer {alice}");
    let second = post(&pair.a.url(), &auth, None, &initialize_body(1)).await;
    assert_eq!(second.status(), 429);
    // Ended through replica B.
    let deleted = end_session(&pair.b.url(), &alice, &session).await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    // On A: unknown now, as everywhere, and her slot is free again.
    let refused = call_in(&pair.a.url(), &alice, &session).await;
    assert_eq!(refused.status(), 404);
    assert_eq!(pair.a.rejected("session_unknown"), 1);
    let again = open_session(&pair.a.url(), &alice).await;
    assert_ne!(again, session);
    assert_eq!(call_in(&pair.a.url(), &alice, &again).await.status(), 200);
}

#[tokio::test]
async fn a_session_created_on_one_replica_is_refused_to_another_principal_on_the_other() {
    let pair = Pair::start(RedisStore::DEFAULT_TIMEOUT, |b| b).await;
    let (alice, bob) = (pair.token("alice"), pair.token("bob"));
    let session = open_session(&pair.a.url(), &alice).await;
    assert_eq!(call_in(&pair.a.url(), &alice, &session).await.status(), 200);

    // Bob on the other replica: refused as without a store (404), counted
    // and audited as session_not_owned.
    let refused = call_in(&pair.b.url(), &bob, &session).await;
    assert_eq!(refused.status(), 404);
    assert_eq!(pair.b.rejected("session_not_owned"), 1);
    // And on the replica that created it.
    assert_eq!(call_in(&pair.a.url(), &bob, &session).await.status(), 404);
    assert_eq!(pair.a.rejected("session_not_owned"), 1);
    // The `session.refused` audit line of the other replica is checked on
    // the reference server's own output in
    // `two_reference_server_processes_share_sessions_through_redis` (a
    // scoped tracing subscriber in a test binary running in parallel
    // misses events whose callsites other threads registered first).

    // Alice on replica B passes the layer (the store binds the session to
    // her); B's rmcp does not hold the session, so rmcp itself answers.
    let accepted = pair.b.metrics.snapshot().accepted;
    let _ = call_in(&pair.b.url(), &alice, &session).await;
    assert_eq!(pair.b.metrics.snapshot().accepted, accepted + 1);
    assert_eq!(pair.b.rejected("session_not_owned"), 1);

    // Another spelling of the id is another session: unknown, refused the
    // same way and logged as such.
    let upper = session.to_uppercase();
    if upper != session {
        assert_eq!(call_in(&pair.b.url(), &alice, &upper).await.status(), 404);
        assert_eq!(pair.b.rejected("session_unknown"), 1);
        assert_eq!(pair.b.rejected("session_not_owned"), 1);
    }

    // The store holds the id's hash, never the id.
    let keys: Vec<String> = pair
        .redis
        .dump()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let session_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("mcp_oauth2:session:"))
        .collect();
    assert_eq!(session_keys.len(), 1, "{keys:?}");
    assert_eq!(session_keys[0].len(), "mcp_oauth2:session:".len() + 64);
    assert!(keys.iter().all(|k| !k.contains(&session)), "{keys:?}");

    // DELETE on A unbinds it everywhere: now refused to Alice on B too.
    let deleted = end_session(&pair.a.url(), &alice, &session).await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert!(
        pair.redis
            .dump()
            .await
            .iter()
            .all(|(k, _)| !k.starts_with("mcp_oauth2:session:"))
    );
    let (before, owned) = (
        pair.b.rejected("session_unknown"),
        pair.b.rejected("session_not_owned"),
    );
    assert_eq!(call_in(&pair.b.url(), &alice, &session).await.status(), 404);
    assert_eq!(pair.b.rejected("session_unknown"), before + 1);
    assert_eq!(pair.b.rejected("session_not_owned"), owned);
}

// A replica's own binding of a session wins over a store value that
// disagrees: the store's values are plain owner digests, and a writer to
// the store copied bob's onto alice's session key (found from outside:
// bob's call then ran in her session, on the replica that created it).
#[tokio::test]
async fn a_store_value_cannot_hand_a_replica_s_session_to_another() {
    let pair = Pair::start(Duration::from_secs(2), |b| b).await;
    let (alice, bob) = (pair.token("alice"), pair.token("bob"));
    let hers = open_session(&pair.a.url(), &alice).await;
    let his = open_session(&pair.a.url(), &bob).await;
    let copied = pair
        .redis
        .command(&[
            "COPY",
            &hashed_key("session", &his),
            &hashed_key("session", &hers),
            "REPLACE",
        ])
        .await;
    assert_eq!(copied.as_deref(), Some(":1"));
    let refused = call_in(&pair.a.url(), &bob, &hers).await;
    assert_eq!(refused.status(), 404);
    assert_eq!(pair.a.rejected("session_not_owned"), 1);
    // His own session is untouched.
    assert_eq!(call_in(&pair.a.url(), &bob, &his).await.status(), 200);
}

#[tokio::test]
async fn sessions_fail_closed_when_redis_is_down_and_work_again_after() {
    let mut pair = Pair::start(Duration::from_millis(300), |b| b).await;
    let alice = pair.token("alice");
    let session = open_session(&pair.a.url(), &alice).await;
    pair.redis.stop();

    // A session request cannot be checked: 503, never the session.
    let refused = call_in(&pair.a.url(), &alice, &session).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["reason"], "store_unavailable");
    assert_eq!(pair.a.rejected("store_unavailable"), 1);

    // A new session cannot be recorded: closed and refused.
    let new = post(
        &pair.b.url(),
        &format!("Bearer {alice}"),
        None,
        &initialize_body(1),
    )
    .await;
    assert_eq!(new.status(), 503);
    assert!(new.headers().get("mcp-session-id").is_none());
    // The same answer as any refusal: Retry-After, and the request id in
    // the body as in `X-Request-Id` (it was missing from this body).
    let header = |name: &str| {
        new.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    let request_id = header("x-request-id").expect("X-Request-Id");
    let body: serde_json::Value = new.json().await.unwrap();
    assert_eq!(body["reason"], "store_unavailable");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");

    // Redis back (empty: its bindings are lost, so the old session is
    // refused, fail closed); new sessions work again.
    pair.redis.start_again().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        let r = post(
            &pair.b.url(),
            &format!("Bearer {alice}"),
            None,
            &initialize_body(1),
        )
        .await;
        if r.status() == 200 {
            break r
                .headers()
                .get("mcp-session-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(call_in(&pair.b.url(), &alice, &fresh).await.status(), 200);
    assert_eq!(call_in(&pair.a.url(), &alice, &session).await.status(), 404);
}

#[tokio::test]
async fn a_slow_redis_refuses_sessions_within_the_timeout() {
    let pair = Pair::start(Duration::from_millis(150), |b| b).await;
    let alice = pair.token("alice");
    let session = open_session(&pair.a.url(), &alice).await;
    pair.redis.pause(2000).await;
    let started = Instant::now();
    let refused = call_in(&pair.a.url(), &alice, &session).await;
    assert_eq!(refused.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reason(refused).await, "store_unavailable");
}

/// A `POST initialize` with a DPoP-bound token and one proof.
async fn post_dpop(url: &str, token: &str, proof: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(initialize_body(1))
        .send()
        .await
        .unwrap()
}

// RFC 9449 section 11.1 across replicas (issue 16).
#[tokio::test]
async fn a_dpop_proof_used_on_one_replica_is_refused_on_the_other() {
    let mut pair = Pair::start(Duration::from_millis(300), |b| b).await;
    let client = DpopClient::new();
    let token = pair
        .issuer
        .token()
        .subject("alice")
        .audience(&pair.resource)
        .dpop_bound_to(client.thumbprint())
        .sign();
    let proof = client.proof("POST", &pair.resource, Some(&token));
    assert_eq!(post_dpop(&pair.a.url(), &token, &proof).await.status(), 200);
    // The same proof, on the other replica and on the same one: a replay.
    let replay = post_dpop(&pair.b.url(), &token, &proof).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(pair.b.rejected("dpop_replay"), 1);
    assert_eq!(post_dpop(&pair.a.url(), &token, &proof).await.status(), 401);
    assert_eq!(pair.a.rejected("dpop_replay"), 1);
    // A fresh proof is welcome anywhere.
    let fresh = client.proof("POST", &pair.resource, Some(&token));
    assert_eq!(post_dpop(&pair.b.url(), &token, &fresh).await.status(), 200);
    // The store holds hashes only.
    let dump = pair.redis.dump().await;
    let dpop: Vec<_> = dump
        .iter()
        .filter(|(k, _)| k.starts_with("mcp_oauth2:dpop:"))
        .collect();
    assert_eq!(dpop.len(), 2, "{dump:?}");
    for (k, v) in &dump {
        assert!(!k.contains(&token) && !k.contains(&proof), "{k}");
        let v = String::from_utf8_lossy(v);
        assert!(!v.contains(&token) && !v.contains(&proof), "{k}");
    }

    // Redis down: a first use cannot be checked, so the proof is refused
    // (503 store_unavailable, fail closed), never accepted.
    pair.redis.stop();
    let unchecked = client.proof("POST", &pair.resource, Some(&token));
    let refused = post_dpop(&pair.a.url(), &token, &unchecked).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(pair.a.rejected("store_unavailable"), 1);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert_eq!(body["reason"], "store_unavailable", "{body}");
    // Counted as a store error of that replica (the metric an operator
    // alerts on), not of the other.
    assert_eq!(pair.a.metrics.snapshot().store_errors, 1);
    assert_eq!(pair.b.metrics.snapshot().store_errors, 0);
}

// RFC 9449 section 11.1 through the layer, with the reply of the proof's
// write to Redis lost (the write ran, the connection dropped, the store
// retried): a fresh proof is accepted, once. Before the fix the retry found
// the proof's own write and the request was refused as `dpop_replay`.
#[tokio::test]
async fn a_fresh_dpop_proof_whose_store_reply_was_lost_is_accepted_once() {
    let redis = RedisServer::start().await;
    let proxy = ReplyDroppingProxy::start(redis.port()).await;
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let store = Arc::new(
        RedisStore::new(&proxy.url())
            .unwrap()
            .timeout(Duration::from_secs(3)),
    );
    let replica = Replica::start(listener, &resource, &issuer, store, |b| b).await;
    let client = DpopClient::new();
    let token = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .dpop_bound_to(client.thumbprint())
        .sign();
    let first = client.proof("POST", &resource, Some(&token));
    assert_eq!(
        post_dpop(&replica.url(), &token, &first).await.status(),
        200
    );

    proxy.drop_reply_to("mcp_oauth2:dpop:");
    let fresh = client.proof("POST", &resource, Some(&token));
    let response = post_dpop(&replica.url(), &token, &fresh).await;
    assert_eq!(proxy.dropped(), 1, "the reply was lost");
    assert_eq!(
        response.status(),
        200,
        "a fresh proof was refused: {}",
        response.text().await.unwrap()
    );
    assert_eq!(replica.rejected("dpop_replay"), 0);
    // Its replay is refused.
    assert_eq!(
        post_dpop(&replica.url(), &token, &fresh).await.status(),
        401
    );
    assert_eq!(replica.rejected("dpop_replay"), 1);
}

/// A real introspection endpoint on loopback that counts its hits: tokens
/// starting with `opaque-` are active for the subject after the dash.
async fn introspection_endpoint(
    issuer: String,
    resource: String,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let (url, hits, _) = switchable_introspection_endpoint(issuer, resource).await;
    (url, hits)
}

/// [`introspection_endpoint`] with a switch: while it is on, every request
/// is answered 503 (an outage).
async fn switchable_introspection_endpoint(
    issuer: String,
    resource: String,
) -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let counter = hits.clone();
    let switch = down.clone();
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move |body: String| {
            let counter = counter.clone();
            let switch = switch.clone();
            let (issuer, resource) = (issuer.clone(), resource.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if switch.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                let token = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let answer = match token.strip_prefix("opaque-") {
                    Some(sub) => serde_json::json!({
                        "active": true, "sub": sub, "iss": issuer, "aud": resource,
                        "exp": support::attack::now() + 600, "client_id": "c1",
                    }),
                    None => serde_json::json!({"active": false}),
                };
                axum::Json(answer).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/introspect", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits, down)
}

/// The store key of `text` in namespace `ns` (`mcp_oauth2:<ns>:` and the
/// hex SHA-256 of `text`, see `crate::store::hashed_key`).
fn hashed_key(ns: &str, text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("mcp_oauth2:{ns}:{hex}")
}

/// The store key of the introspection result of `token`.
fn introspection_key(token: &str) -> String {
    hashed_key("introspection", token)
}

// "Secure token storage": whoever can write to the store cannot plant an
// active introspection result for a token they made up (in the untagged
// format of earlier builds, or with a tag not made with this deployment's
// client secret); the endpoint is asked and says inactive. A replica of
// another deployment sharing the store (another client secret) does not
// take this deployment's genuine results either.
#[tokio::test]
async fn an_introspection_result_planted_in_the_store_is_not_trusted() {
    use std::sync::atomic::Ordering;
    let redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", la.local_addr().unwrap());
    let (endpoint, hits) =
        introspection_endpoint(issuer.issuer().to_owned(), resource.clone()).await;
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT.set(endpoint).unwrap();
    fn settings(secret: &str) -> IntrospectionSettings {
        IntrospectionSettings::new("rs", secret)
            .endpoint(url::Url::parse(ENDPOINT.get().unwrap()).unwrap())
    }
    let ours: fn(AuthConfigBuilder) -> AuthConfigBuilder = |b| b.introspection(settings("secret"));
    let theirs: fn(AuthConfigBuilder) -> AuthConfigBuilder =
        |b| b.introspection(settings("another-secret"));
    let store = || -> Arc<dyn SharedStore> {
        Arc::new(
            RedisStore::new(&redis.url())
                .unwrap()
                .timeout(Duration::from_millis(300)),
        )
    };
    let a = Replica::start(la, &resource, &issuer, store(), ours).await;

    let answer = serde_json::json!({
        "active": true, "sub": "mallory", "iss": issuer.issuer(), "aud": resource,
        "exp": support::attack::now() + 600, "client_id": "c1", "scope": "admin",
    })
    .to_string();
    let until = u64::try_from(support::attack::now() + 600).unwrap() * 1000;
    let head = |version: u8| {
        let mut v = vec![version, 0, 0];
        v.extend_from_slice(&until.to_be_bytes());
        v
    };
    let untagged = [head(1), answer.as_bytes().to_vec()].concat();
    let bad_tag = [head(2), vec![0; 32], answer.as_bytes().to_vec()].concat();
    for (token, value) in [("planted-1", untagged), ("planted-2", bad_tag)] {
        store()
            .put(&introspection_key(token), &value, Duration::from_secs(60))
            .await
            .unwrap();
        let refused = post(
            &a.url(),
            &format!("Bearer {token}"),
            None,
            &initialize_body(1),
        )
        .await;
        assert_eq!(refused.status(), 401, "{token}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the endpoint decided both");

    // A genuine result of this deployment, then a replica of another one.
    let auth = "Bearer opaque-alice";
    let ok = post(&a.url(), auth, None, &initialize_body(1)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let b = Replica::start(lb, &resource, &issuer, store(), theirs).await;
    let ok = post(&b.url(), auth, None, &initialize_body(1)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "another deployment asked its endpoint itself"
    );
    assert_eq!(b.metrics.snapshot().introspection_calls, 1);
}

#[tokio::test]
async fn an_introspection_result_cached_by_one_replica_is_used_by_the_other() {
    use std::sync::atomic::Ordering;
    let redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", la.local_addr().unwrap());
    let (endpoint, hits) =
        introspection_endpoint(issuer.issuer().to_owned(), resource.clone()).await;
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT.set(endpoint).unwrap();
    let tweak: fn(AuthConfigBuilder) -> AuthConfigBuilder = |b| {
        b.introspection(
            IntrospectionSettings::new("rs", "secret")
                .endpoint(url::Url::parse(ENDPOINT.get().unwrap()).unwrap()),
        )
    };
    let store = || -> Arc<dyn SharedStore> {
        Arc::new(
            RedisStore::new(&redis.url())
                .unwrap()
                .timeout(Duration::from_millis(300)),
        )
    };
    let a = Replica::start(la, &resource, &issuer, store(), tweak).await;
    let b = Replica::start(lb, &resource, &issuer, store(), tweak).await;
    let auth = "Bearer opaque-alice";
    assert_eq!(
        post(&a.url(), auth, None, &initialize_body(1))
            .await
            .status(),
        200
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Replica B has never seen the token: the shared result answers.
    assert_eq!(
        post(&b.url(), auth, None, &initialize_body(1))
            .await
            .status(),
        200
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one endpoint call for both");
    assert_eq!(b.metrics.snapshot().introspection_calls, 0);
    // An inactive token is not shared: each replica asks.
    for r in [&a, &b] {
        let refused = post(&r.url(), "Bearer nobody", None, &initialize_body(1)).await;
        assert_eq!(refused.status(), 401);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Stored under the token's hash, without the token.
    let dump = redis.dump().await;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"opaque-alice");
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let keys: Vec<&String> = dump.iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&&format!("mcp_oauth2:introspection:{hex}")),
        "{keys:?}"
    );
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("mcp_oauth2:introspection:"))
            .count(),
        1
    );
    for (k, v) in &dump {
        assert!(!k.contains("opaque-") && !String::from_utf8_lossy(v).contains("opaque-"));
    }

    // Redis down: introspection falls back to the endpoint (never to
    // acceptance of an unknown token). A GET opens no session (whose
    // binding would need the store): the layer's verdict is the count.
    drop(redis);
    let get = |url: String, token: &'static str| async move {
        reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream")
            .header("authorization", token)
            .send()
            .await
            .unwrap()
            .status()
    };
    let accepted = b.metrics.snapshot().accepted;
    let started = Instant::now();
    assert_ne!(get(b.url(), "Bearer opaque-bob").await, 401);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(b.metrics.snapshot().accepted, accepted + 1);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_eq!(get(a.url(), "Bearer nobody-else").await, 401);
    assert_eq!(hits.load(Ordering::SeqCst), 5);
    // Each failed store operation is counted: B could neither read nor
    // share bob's result, A could not read nobody-else's (an inactive
    // result is never shared).
    assert_eq!(b.metrics.snapshot().store_errors, 2);
    assert_eq!(a.metrics.snapshot().store_errors, 1);
}

/// The reference server (`examples/protected_server`, built by `cargo
/// test`) as a child process configured by environment, with its log
/// lines (stdout) collected.
struct ReferenceServer {
    child: tokio::process::Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReferenceServer {
    async fn start(issuer: &str, resource: &str, port: u16, redis_url: &str) -> Self {
        Self::start_with(issuer, resource, port, redis_url, &[]).await
    }

    /// [`start`](Self::start) with more variables.
    async fn start_with(
        issuer: &str,
        resource: &str,
        port: u16,
        redis_url: &str,
        more: &[(&str, &str)],
    ) -> Self {
        let mut env = vec![
            ("MCP_OAUTH2_ISSUER", issuer),
            ("MCP_OAUTH2_RESOURCE", resource),
            ("MCP_OAUTH2_REDIS_URL", redis_url),
        ];
        env.extend_from_slice(more);
        let support::reference::Reference { child, mut lines } =
            support::reference::start(port, &env).await;
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    fn lines(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

// While Redis is away, what the server writes about it is one line per
// outage, not one per request: operations refused at once while the
// store's breaker is open are logged at DEBUG (README, "Shared state"),
// the writes of new sessions included (found from outside: a WARN line
// for every `initialize`, the error written as Rust `Debug`).
#[tokio::test]
async fn an_outage_writes_a_few_lines_not_one_per_request() {
    let mut redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let mut server = ReferenceServer::start(issuer.issuer(), &resource, port, &redis.url()).await;
    let alice = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    redis.stop();
    let auth = format!("Bearer {alice}");
    for i in 0..40 {
        let r = post(&resource, &auth, None, &initialize_body(i)).await;
        assert_eq!(r.status(), 503, "{i}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warned = server.lines("WARN");
    // A line per probe of the store (its breaker's own, and the request
    // that made it), however slowly the requests came (an instrumented
    // build takes longer than the breaker's cooldown): never one per
    // request refused at once in between.
    let probes = server.lines("mcp_oauth2::breaker").len();
    let sessions = server.lines("closed a new session").len();
    assert!(sessions <= probes.max(1), "{warned:#?}");
    assert!(sessions < 40 / 2, "{warned:#?}");
    assert!(
        warned
            .iter()
            .all(|l| !l.contains("Some(") && !l.contains("None")),
        "{warned:#?}"
    );
    server.child.kill().await.unwrap();
}

// A Redis that answers with an error (here a password it refuses: the
// breaker stays closed, an error reply is an answer) fails every request's
// store operations alike; what the server writes about it is a WARN line a
// second per place the store is used, the rest at DEBUG and counted in the
// next line's `suppressed`, however many requests anyone sends (found from
// outside: 750 lines for 150 refused tokens, four `store.error` lines each
// from the throttle's counters, past the audit refusal limit).
#[tokio::test]
async fn a_redis_answering_errors_writes_a_line_a_second_not_one_per_request() {
    let redis = RedisServer::start().await;
    redis
        .command(&["CONFIG", "SET", "requirepass", "right-password"])
        .await;
    let issuer = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let wrong = format!("redis://:wrong-password@127.0.0.1:{}/0", redis.port());
    let mut server = ReferenceServer::start_with(
        issuer.issuer(),
        &resource,
        port,
        &wrong,
        &[
            ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "3/30"),
            ("RUST_LOG", "warn"),
        ],
    )
    .await;
    // Refused tokens, each counted by the throttle in the store (which
    // fails open: 401s, never 429s).
    let started = Instant::now();
    for i in 0..60 {
        let r = post(
            &resource,
            &format!("Bearer not-a-token-{i}"),
            None,
            &initialize_body(i),
        )
        .await;
        assert_eq!(r.status(), 401, "{i}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seconds = started.elapsed().as_secs() + 1;
    let errors = server.lines("store.error");
    assert!(!errors.is_empty(), "the failure is told");
    assert!(
        errors.iter().all(|l| l.contains("authentication failed")),
        "{errors:#?}"
    );
    // One call site here (the throttle's): a line a second at most.
    let bound = usize::try_from(seconds).unwrap();
    assert!(
        errors.len() <= bound,
        "{} lines in {seconds} s: {errors:#?}",
        errors.len()
    );
    assert!(
        server
            .lines("password")
            .iter()
            .all(|l| !l.contains("wrong-password")),
        "the password is never written"
    );
    // A later line says how many were left out since the last one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = post(
        &resource,
        "Bearer not-a-token-again",
        None,
        &initialize_body(99),
    )
    .await;
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = server.lines("store.error");
    let told = last.last().unwrap();
    assert!(last.len() > errors.len(), "{last:#?}");
    assert!(told.contains("suppressed="), "{told}");
    server.child.kill().await.unwrap();
}

// Issue 17's reference server contract: two processes pointed at one Redis
// (MCP_OAUTH2_REDIS_URL) behave as one server for sessions.
#[tokio::test]
async fn two_reference_server_processes_share_sessions_through_redis() {
    let redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let (pa, pb) = (
        support::reference::free_port(),
        support::reference::free_port(),
    );
    let resource = format!("http://127.0.0.1:{pa}/mcp");
    let mut a = ReferenceServer::start(issuer.issuer(), &resource, pa, &redis.url()).await;
    let mut b = ReferenceServer::start(issuer.issuer(), &resource, pb, &redis.url()).await;
    let url_b = format!("http://127.0.0.1:{pb}/mcp");
    let token = |sub: &str| {
        issuer
            .token()
            .subject(sub)
            .audience(&resource)
            .scopes(["notes:read"])
            .sign()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let session = open_session(&resource, &alice).await;
    assert_eq!(call_in(&resource, &alice, &session).await.status(), 200);
    assert_eq!(call_in(&url_b, &bob, &session).await.status(), 404);
    // B's audit stream names the refusal.
    let deadline = Instant::now() + Duration::from_secs(5);
    let audit = loop {
        let lines = b.lines("session.refused");
        if !lines.is_empty() || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(audit.len(), 1, "{:?}", b.log.lock().unwrap());
    assert!(audit[0].contains("session_not_owned"), "{}", audit[0]);
    assert!(!audit[0].contains(&bob) && !audit[0].contains(&session));
    // A never saw Bob.
    assert!(a.lines("session.refused").is_empty());
    a.child.kill().await.unwrap();
    b.child.kill().await.unwrap();
}

// RFC 9449 section 9 across replicas configured by environment (the
// reference server): a server nonce one replica issued is good at the
// other, as the README promises for replicas that share `nonce_secret`.
// Before the fix no variable set that secret, so each process drew its
// own: behind a load balancer a client's retry with the nonce it was
// given landed on the other replica and was refused again
// (`use_dpop_nonce`, a fresh nonce of that replica), round after round:
// without the variable this test saw B answer 401 `dpop_nonce_invalid`
// to A's nonce (and, with it, the server refused the unknown variable).
#[tokio::test]
async fn reference_servers_sharing_redis_accept_each_others_dpop_nonces() {
    let redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let (pa, pb) = (
        support::reference::free_port(),
        support::reference::free_port(),
    );
    let resource = format!("http://127.0.0.1:{pa}/mcp");
    let more = [
        ("MCP_OAUTH2_DPOP_NONCE", "1"),
        (
            "MCP_OAUTH2_DPOP_NONCE_SECRET",
            "a-nonce-secret-every-replica-shares",
        ),
    ];
    let mut a =
        ReferenceServer::start_with(issuer.issuer(), &resource, pa, &redis.url(), &more).await;
    let mut b =
        ReferenceServer::start_with(issuer.issuer(), &resource, pb, &redis.url(), &more).await;
    let url_b = format!("http://127.0.0.1:{pb}/mcp");
    let client = DpopClient::new();
    let token = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["notes:read"])
        .dpop_bound_to(client.thumbprint())
        .sign();
    // A demands a nonce and hands one out.
    let first = post_dpop(
        &resource,
        &token,
        &client.proof("POST", &resource, Some(&token)),
    )
    .await;
    assert_eq!(first.status(), 401);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    // The retry with it lands on B, and on A: both take it.
    for url in [&url_b, &resource] {
        let proof = client
            .proof_builder("POST", &resource)
            .access_token(&token)
            .nonce(&nonce)
            .sign();
        let retried = post_dpop(url, &token, &proof).await;
        let status = retried.status();
        let challenge = retried
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = retried.text().await.unwrap();
        assert_eq!(status, 200, "{url}: {challenge:?} {body}");
    }
    a.child.kill().await.unwrap();
    b.child.kill().await.unwrap();
}

// Throttling on a Redis that stops answering fails open, as documented,
// without holding every request: the reference server with
// MCP_OAUTH2_FAILED_AUTH_LIMIT reads two counters (the address's, the
// token's) before verifying each request, and each read waited the whole
// store timeout (250 ms) for as long as Redis stayed frozen: twenty store
// timeouts for these ten calls. Now a frozen Redis costs a timeout and a
// probe, then the reads fail at once for the cooldown (logged once, by the
// breaker, not once each), and the calls are still served.
#[tokio::test]
async fn throttling_on_a_frozen_redis_fails_open_without_a_timeout_per_request() {
    let redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let mut server = ReferenceServer::start_with(
        issuer.issuer(),
        &resource,
        port,
        &redis.url(),
        &[("MCP_OAUTH2_FAILED_AUTH_LIMIT", "5/60")],
    )
    .await;
    let token = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    // A stateless 2026-07-28 call: no session, so only the throttle's
    // counters use the store.
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }},
    })
    .to_string();
    let call = || async {
        reqwest::Client::new()
            .post(&resource)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(call().await, 200);
    redis.freeze();
    for _ in 0..10 {
        assert_eq!(call().await, 200, "throttling fails open");
    }
    // The breaker's own line says the store is cooled down, once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.lines("redis_store_reads").is_empty() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two or three timeouts (the first operation's, the probe's), within
    // a second of each other: one line, or two when a second passed
    // between them (a WARN line a second per call site).
    let timeouts = server.lines("store timed out").len();
    assert!((1..=3).contains(&timeouts), "{timeouts} store timeouts");
    // The reads refused at once are not a line each (found from outside:
    // 34,490 warnings in 2 s under load); only the timeouts are.
    assert_eq!(
        server.lines("store.error").len(),
        timeouts,
        "{:?}",
        server.lines("store.error")
    );
    assert!(server.lines("not answering").is_empty());
    for line in server.lines("store.error") {
        assert!(line.contains("fails open"), "{line}");
        assert!(!line.contains(&token), "{line}");
    }
    redis.thaw();
    server.child.kill().await.unwrap();
}

// Failed authentications counted on one replica count on the other: with a
// limit of 3 per minute, two failures on A and one on B put the client
// past the limit on both, for any token it sends, while the counters live
// in Redis (the token by its fingerprint only).
#[tokio::test]
async fn failures_on_one_replica_count_on_the_other() {
    let pair = Pair::start(RedisStore::DEFAULT_TIMEOUT, |b| {
        b.failed_auth_limit(3, Duration::from_secs(60))
    })
    .await;
    let good = pair.token("alice");
    let mut tampered = good.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let bad = format!("Bearer {}", String::from_utf8(tampered).unwrap());
    let body = initialize_body(1);
    for url in [pair.a.url(), pair.a.url(), pair.b.url()] {
        assert_eq!(post(&url, &bad, None, &body).await.status(), 401, "{url}");
    }
    // The fourth request, on either replica, with any token: 429.
    let other = format!("Bearer {}", pair.token("bob"));
    for (url, auth) in [(pair.b.url(), &other), (pair.a.url(), &bad)] {
        let response = post(&url, auth, None, &body).await;
        assert_eq!(response.status(), 429, "{url}");
        assert!(response.headers().contains_key("retry-after"));
    }
    assert_eq!(pair.a.metrics.snapshot().throttled, 1);
    assert_eq!(pair.b.metrics.snapshot().throttled, 1);
    // Redis holds the counters (per address, per token fingerprint), never
    // token material.
    let dump = pair.redis.dump().await;
    assert!(
        dump.iter()
            .any(|(k, _)| k.starts_with("mcp_oauth2:throttle:token:")),
        "{dump:?}"
    );
    for (k, v) in &dump {
        assert!(!k.contains(&good[..20]), "{k}");
        assert!(!String::from_utf8_lossy(v).contains(&good[..20]), "{k}");
    }
}

/// A downstream API for the exchange tests: it records every Bearer token
/// it gets and answers the token's `sub` and `aud` (decoded, unverified:
/// the tokens come from the test's own issuer; signature and audience are
/// checked in `tests/token_exchange.rs`).
async fn recording_api() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use base64::Engine as _;
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/me",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let sink = sink.clone();
            async move {
                let token = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push(token.clone());
                let claims: serde_json::Value = token
                    .split('.')
                    .nth(1)
                    .and_then(|p| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(p)
                            .ok()
                    })
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                serde_json::json!({ "sub": claims["sub"], "aud": claims["aud"] }).to_string()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/me", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// `downstream_whoami` through a real rmcp client: (isError, text).
async fn downstream_whoami(url: &str, token: &str) -> (bool, String) {
    use support::fixture::{bounded, call_result, stateless_client};
    // Stateless (2026-07-28): no session, so Redis down touches only the
    // exchange cache.
    let client = bounded(stateless_client(url, token)).await.unwrap();
    let answer = call_result(&client, "downstream_whoami").await;
    client.cancel().await.unwrap();
    answer
}

// Issue 18: exchanged tokens shared by reference server processes through
// Redis (MCP_OAUTH2_REDIS_URL + MCP_OAUTH2_EXCHANGE_CACHE_KEY), sealed. A
// user costs one exchange across replicas; Redis holds neither the token
// nor whom it is for; an entry moved to another user's key, or sealed
// under another key, is ignored (a new exchange, never someone else's
// token); Redis down costs an exchange, never the call.
#[tokio::test]
async fn reference_servers_share_exchanged_tokens_sealed_in_redis() {
    use base64::Engine as _;
    use mcp_oauth2::testing::ClientRegistration;
    let mut redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    issuer.register_client(ClientRegistration::confidential(
        "mcp-server",
        "server-secret",
    ));
    let (api_url, seen) = recording_api().await;
    // 32 bytes no one guesses (the server refuses a repeated byte or
    // pattern, a counter): a digest of the seed.
    let b64 = |seed: u8| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &[seed]);
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    };
    let (key, other_key) = (b64(7), b64(9));
    let ports = [
        support::reference::free_port(),
        support::reference::free_port(),
        support::reference::free_port(),
    ];
    let resource = format!("http://127.0.0.1:{}/mcp", ports[0]);
    let audience = "https://downstream.example/api";
    let redis_url = redis.url();
    let mut servers = Vec::new();
    for (port, key) in ports.iter().zip([&key, &key, &other_key]) {
        servers.push(
            support::reference::start(
                *port,
                &[
                    ("MCP_OAUTH2_ISSUER", issuer.issuer()),
                    ("MCP_OAUTH2_RESOURCE", &resource),
                    ("MCP_OAUTH2_REDIS_URL", &redis_url),
                    ("MCP_OAUTH2_EXCHANGE_CACHE_KEY", key),
                    ("MCP_OAUTH2_CLIENT_ID", "mcp-server"),
                    ("MCP_OAUTH2_CLIENT_SECRET", "server-secret"),
                    ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", audience),
                    ("MCP_OAUTH2_DOWNSTREAM_URL", &api_url),
                ],
            )
            .await,
        );
    }
    let url = |i: usize| format!("http://127.0.0.1:{}/mcp", ports[i]);
    let token = |sub: &str| {
        issuer
            .token()
            .subject(sub)
            .audience(&resource)
            .scopes(["notes:read"])
            .sign()
    };
    let who = |text: &str| -> serde_json::Value { serde_json::from_str(text).unwrap() };
    let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));

    // Alice on A, then on B: one exchange, the same downstream token.
    for i in [0, 1] {
        let (is_error, text) = downstream_whoami(&url(i), &alice).await;
        assert!(!is_error, "{text}");
        assert_eq!(who(&text)["sub"], "alice");
        assert_eq!(who(&text)["aud"], audience);
    }
    assert_eq!(issuer.exchange_hits(), 1, "B reused A's token");
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1]);
    assert_ne!(tokens[0], alice, "never the caller's own token");

    // What Redis holds: one sealed entry under a hashed key.
    let exchange_entries = |dump: Vec<(String, Vec<u8>)>| -> Vec<(String, String)> {
        dump.into_iter()
            .filter(|(k, _)| k.starts_with("mcp_oauth2:exchange:"))
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect()
    };
    let entries = exchange_entries(redis.dump().await);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (alice_key, alice_sealed) = entries[0].clone();
    assert_eq!(alice_key.len(), "mcp_oauth2:exchange:".len() + 64);
    assert!(alice_sealed.starts_with("x1e."), "{alice_sealed}");
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for secret in [&tokens[0], &alice] {
        assert!(!alice_sealed.contains(&signature(secret)));
    }
    for clear in ["alice", "downstream.example", "notes:read", "mcp-server"] {
        assert!(
            !alice_sealed.contains(clear) && !alice_key.contains(clear),
            "{clear}"
        );
    }

    // Bob on A; then his entry is overwritten with Alice's sealed token.
    // B must not hand Alice's token to Bob: it exchanges for Bob.
    assert!(!downstream_whoami(&url(0), &bob).await.0);
    assert_eq!(issuer.exchange_hits(), 2);
    let entries = exchange_entries(redis.dump().await);
    let (bob_key, _) = entries
        .iter()
        .find(|(k, _)| *k != alice_key)
        .unwrap()
        .clone();
    let writer = RedisStore::new(&redis_url).unwrap();
    writer
        .put(&bob_key, alice_sealed.as_bytes(), Duration::from_secs(60))
        .await
        .unwrap();
    let (is_error, text) = downstream_whoami(&url(1), &bob).await;
    assert!(!is_error, "{text}");
    assert_eq!(who(&text)["sub"], "bob");
    assert_eq!(issuer.exchange_hits(), 3, "the moved entry was ignored");
    assert_ne!(seen.lock().unwrap().last(), Some(&tokens[0]));

    // C holds another key: Alice's entry does not open there; it exchanges.
    let (is_error, text) = downstream_whoami(&url(2), &alice).await;
    assert!(!is_error, "{text}");
    assert_eq!(who(&text)["sub"], "alice");
    assert_eq!(issuer.exchange_hits(), 4);
    // ... and names it otherwise: a store key is a MAC of the cache key
    // under the secret, not a SHA-256 anyone could recompute for a guessed
    // user (found from outside), so C's entry for Alice stands beside A's.
    let entries = exchange_entries(redis.dump().await);
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(entries.contains(&(alice_key.clone(), alice_sealed.clone())));

    // Redis down: the call still works, at the price of an exchange.
    redis.stop();
    let (is_error, text) = downstream_whoami(&url(0), &carol).await;
    assert!(!is_error, "{text}");
    assert_eq!(who(&text)["sub"], "carol");
    assert_eq!(issuer.exchange_hits(), 5);
    for server in &mut servers {
        server.child.kill().await.unwrap();
    }
}

// Two reference servers sharing one Redis, each with its own
// `MCP_OAUTH2_REDIS_PREFIX`: every key either writes starts with its prefix,
// so their session owners and throttle counters stay apart (without a
// prefix variable, an operator configuring by environment had no way to
// separate them).
#[tokio::test]
async fn the_reference_server_prefixes_its_keys() {
    let redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let mut servers = Vec::new();
    for prefix in ["staging:", "prod:"] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let server = support::reference::start(
            port,
            &[
                ("MCP_OAUTH2_ISSUER", issuer.issuer()),
                ("MCP_OAUTH2_RESOURCE", &resource),
                ("MCP_OAUTH2_REDIS_URL", &redis.url()),
                ("MCP_OAUTH2_REDIS_PREFIX", prefix),
                ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "5/60"),
            ],
        )
        .await;
        let token = issuer
            .token()
            .audience(&resource)
            .scopes(["notes:read"])
            .sign();
        open_session(&resource, &token).await;
        let refused = post(&resource, "Bearer not-a-token", None, &initialize_body(1)).await;
        assert_eq!(refused.status(), 401);
        servers.push(server);
    }
    // A refusal is counted by the throttle after its answer is sent: wait
    // (a bounded while) for both servers' counts to land.
    let wanted = |keys: &[String]| {
        ["staging:", "prod:"].iter().all(|prefix| {
            keys.iter()
                .any(|k| k.starts_with(&format!("{prefix}mcp_oauth2:throttle:")))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let keys = loop {
        let keys: Vec<String> = redis.dump().await.into_iter().map(|(k, _)| k).collect();
        if wanted(&keys) || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for prefix in ["staging:", "prod:"] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("{prefix}mcp_oauth2:session:"))),
            "{keys:?}"
        );
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("{prefix}mcp_oauth2:throttle:"))),
            "{keys:?}"
        );
    }
    assert!(
        keys.iter()
            .all(|k| k.starts_with("staging:") || k.starts_with("prod:")),
        "{keys:?}"
    );
}

/// The key of a legacy session's owner (see `src/layer/sessions.rs`).
fn session_key(id: &str) -> String {
    hashed_key("session", id)
}

// Something that is not Redis at the Redis URL: a peer that accepts the
// connection and never answers (nor even the connection's handshake), one
// that answers bytes that are not RESP, an HTTP server, and one that
// announces a bulk string of a gigabyte and never sends it. Every operation
// is an error within its timeout (never a hang, never a panic), and the
// error never repeats the URL's password.
#[tokio::test]
async fn a_peer_that_is_not_redis_is_an_error_within_the_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for answer in [
        None,
        Some(&b"\x00\x01zz\r\n"[..]),
        Some(&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..]),
        Some(&b"$999999999\r\nabc"[..]),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = tokio::spawn(async move {
            let mut silent = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let Some(answer) = answer else {
                    silent.push(socket);
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(1..) = socket.read(&mut buf).await {
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let store = RedisStore::new(&format!("redis://:hunter2@127.0.0.1:{port}/0"))
            .unwrap()
            .timeout(Duration::from_millis(200));
        for _ in 0..3 {
            let started = Instant::now();
            let errors = [
                store.get("mcp_oauth2:session:k").await.err(),
                store.hit("mcp_oauth2:throttle:k", WINDOW).await.err(),
                store
                    .put_if_absent("mcp_oauth2:dpop:k", b"1", WINDOW)
                    .await
                    .err(),
            ];
            assert!(
                started.elapsed() < Duration::from_millis(1500),
                "{answer:?}: bounded"
            );
            for err in errors {
                let err = err.expect("an error, never a value");
                assert!(!err.to_string().contains("hunter2"), "{err}");
            }
        }
        peer.abort();
    }
}

// Someone else writing under our keys (another program sharing the Redis
// and its prefix): a session owner that is not a string makes Redis refuse
// the read, and the session request is refused 503 `store_unavailable`
// (fail closed), never served; a string that is not the caller's digest is
// somebody else's session (404). Throttle counters that are not counters
// make throttling fail open as documented: the requests are verified as
// usual, counted as store errors.
#[tokio::test]
async fn values_of_another_type_under_our_keys_fail_closed() {
    let pair = Pair::start(RedisStore::DEFAULT_TIMEOUT, |b| {
        b.failed_auth_limit(3, Duration::from_secs(60))
    })
    .await;
    let alice = pair.token("alice");
    let session = open_session(&pair.a.url(), &alice).await;
    let key = session_key(&session);
    assert!(pair.redis.dump().await.iter().any(|(k, _)| *k == key));

    pair.redis.command(&["DEL", &key]).await;
    pair.redis.command(&["HSET", &key, "owner", "x"]).await;
    let refused = call_in(&pair.a.url(), &alice, &session).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(reason(refused).await, "store_unavailable");

    pair.redis.command(&["DEL", &key]).await;
    pair.redis.command(&["SET", &key, "not-a-digest"]).await;
    assert_eq!(call_in(&pair.a.url(), &alice, &session).await.status(), 404);

    // A tampered token fails once and leaves its counters; each becomes a
    // list.
    let mut tampered = alice.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let bad = format!("Bearer {}", String::from_utf8(tampered).unwrap());
    assert_eq!(
        post(&pair.b.url(), &bad, None, &initialize_body(1))
            .await
            .status(),
        401
    );
    // Counted after the answer (in a task): wait for both counters.
    let deadline = Instant::now() + Duration::from_secs(5);
    let counters = loop {
        let counters: Vec<String> = pair
            .redis
            .dump()
            .await
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("mcp_oauth2:throttle:"))
            .collect();
        if counters.len() == 2 || Instant::now() > deadline {
            break counters;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(counters.len(), 2, "{counters:?}");
    // With an expiry, as a window's (one without is replaced by the next
    // count: `a_counter_without_an_expiry_is_no_window`).
    for k in &counters {
        pair.redis.command(&["DEL", k]).await;
        pair.redis.command(&["RPUSH", k, "9"]).await;
        pair.redis.command(&["PEXPIRE", k, "60000"]).await;
    }
    let errors = pair.b.metrics.snapshot().store_errors;
    for _ in 0..4 {
        let response = post(&pair.b.url(), &bad, None, &initialize_body(1)).await;
        assert_eq!(response.status(), 401);
    }
    let good = post(
        &pair.b.url(),
        &format!("Bearer {alice}"),
        None,
        &initialize_body(1),
    )
    .await;
    assert_eq!(good.status(), 200);
    assert!(pair.b.metrics.snapshot().store_errors > errors);
}

// A connection that goes silent without closing (a NAT or load balancer
// that dropped its state, a network partition: no FIN, no RST) leaves the
// store's connection half open. Each operation then timed out, and the
// connection was never replaced: every later operation timed out too,
// until the kernel gave up on the socket (minutes to hours), and with it
// every session request and DPoP proof was refused 503. A timed-out
// operation now drops its connection: the next one opens a new connection
// and is served.
#[tokio::test]
async fn a_connection_gone_silent_is_replaced_after_a_timeout() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = RedisServer::start().await;
    let upstream = redis.port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A loopback proxy: connections numbered up to `silenced` forward
    // nothing any more (and stay open).
    let opened = Arc::new(AtomicU64::new(0));
    let silenced = Arc::new(AtomicU64::new(0));
    let (count, cut) = (opened.clone(), silenced.clone());
    let proxy = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let number = count.fetch_add(1, Ordering::SeqCst) + 1;
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut up, mut down) = ([0u8; 65536], [0u8; 65536]);
                loop {
                    let live = number > cut.load(Ordering::SeqCst);
                    tokio::select! {
                        read = client.read(&mut up) => {
                            let Ok(n @ 1..) = read else { return };
                            if live && server.write_all(&up[..n]).await.is_err() {
                                return;
                            }
                        }
                        read = server.read(&mut down) => {
                            let Ok(n @ 1..) = read else { return };
                            if live && client.write_all(&down[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .timeout(Duration::from_millis(200));
    store
        .put("mcp_oauth2:session:k", b"1", Duration::from_secs(60))
        .await
        .unwrap();
    silenced.store(opened.load(Ordering::SeqCst), Ordering::SeqCst);
    let err = store.get("mcp_oauth2:session:k").await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout), "{err:?}");
    // Served again within a few operations, on a new connection.
    let mut served = None;
    for _ in 0..5 {
        if let Ok(value) = store.get("mcp_oauth2:session:k").await {
            served = Some(value);
            break;
        }
    }
    assert_eq!(served, Some(Some(b"1".to_vec())), "never reconnected");
    assert!(opened.load(Ordering::SeqCst) > silenced.load(Ordering::SeqCst));
    proxy.abort();
}

// An introspection outage with a shared store: the semantics do not
// change. Each replica has its own outage cooldown (one request finds the
// endpoint down, then new tokens are refused at once with 503
// `introspection_unavailable`); an active result in the store (or in the
// replica's cache) keeps being served until its deadline; after the
// cooldown, one request finds the recovered endpoint.
#[tokio::test]
async fn an_introspection_outage_is_cooled_down_per_replica_and_shared_results_still_serve() {
    use std::sync::atomic::Ordering;
    let redis = RedisServer::start().await;
    let issuer = TestIssuer::start().await.unwrap();
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", la.local_addr().unwrap());
    let (endpoint, hits, down) =
        switchable_introspection_endpoint(issuer.issuer().to_owned(), resource.clone()).await;
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT.set(endpoint).unwrap();
    let tweak: fn(AuthConfigBuilder) -> AuthConfigBuilder = |b| {
        b.introspection(
            IntrospectionSettings::new("rs", "secret")
                .endpoint(url::Url::parse(ENDPOINT.get().unwrap()).unwrap()),
        )
    };
    let store = || -> Arc<dyn SharedStore> {
        Arc::new(
            RedisStore::new(&redis.url())
                .unwrap()
                .timeout(Duration::from_millis(300)),
        )
    };
    let a = Replica::start(la, &resource, &issuer, store(), tweak).await;
    let b = Replica::start(lb, &resource, &issuer, store(), tweak).await;
    let status = |url: String, token: &'static str| async move {
        let response = post(&url, &format!("Bearer {token}"), None, &initialize_body(1)).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (
            status,
            body["reason"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(status(a.url(), "opaque-alice").await.0, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    down.store(true, Ordering::SeqCst);
    let unavailable = (503, "introspection_unavailable".to_owned());
    assert_eq!(status(b.url(), "opaque-bob").await, unavailable);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    for token in ["opaque-carol", "opaque-dan", "opaque-eve", "opaque-fay"] {
        assert_eq!(status(b.url(), token).await, unavailable);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "refused without a request");
    // B never saw alice's token: the store answers, breaker open or not.
    assert_eq!(status(b.url(), "opaque-alice").await.0, 200);
    // A has its own cooldown: its first new token finds the endpoint down.
    assert_eq!(status(a.url(), "opaque-gus").await, unavailable);
    assert_eq!(status(a.url(), "opaque-hal").await, unavailable);
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(status(b.url(), "opaque-ivy").await.0, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 4, "one request: the probe");
    assert_eq!(status(a.url(), "opaque-ivy").await.0, 200, "shared by B");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

// A replica keeps the DPoP proofs it saw in memory beside Redis: a Redis
// restarted empty (no persistence, a failover) cannot make a proof this
// replica refused as a replay usable there again (found from outside: it
// was taken once more, 200). A fresh proof is served after the restart.
#[tokio::test]
async fn dpop_proofs_stay_used_at_their_replica_when_redis_forgets() {
    use mcp_oauth2::testing::DpopClient;
    let mut redis = RedisServer::start().await;
    let store: Arc<dyn SharedStore> = Arc::new(RedisStore::new(&redis.url()).unwrap());
    let h = support::fixture::Harness::start(|b| b.shared_store(Arc::clone(&store))).await;
    let client = DpopClient::new();
    let token = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .dpop_bound_to(client.thumbprint())
        .sign();
    let auth = format!("DPoP {token}");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let proof = client.proof("POST", &h.resource, Some(&token));
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(
            h.post(&[("authorization", &auth), ("dpop", &proof)], body)
                .await
        ),
        200
    );
    assert_eq!(
        status(
            h.post(&[("authorization", &auth), ("dpop", &proof)], body)
                .await
        ),
        401,
        "a replay"
    );
    redis.stop();
    redis.start_again().await;
    assert!(redis.dump().await.is_empty(), "Redis forgot");
    // The store reconnects within a few tries.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h
            .post(&[("authorization", &auth), ("dpop", &proof)], body)
            .await;
        match r.status().as_u16() {
            503 => {
                assert!(Instant::now() < deadline, "the store never came back");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            code => {
                assert_eq!(code, 401, "the proof taken again after the restart");
                break;
            }
        }
    }
    let fresh = client.proof("POST", &h.resource, Some(&token));
    assert_eq!(
        status(
            h.post(&[("authorization", &auth), ("dpop", &fresh)], body)
                .await
        ),
        200
    );
}
