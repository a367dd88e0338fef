//! systemd integration without systemd: the test binds its own Unix datagram socket as
//! `NOTIFY_SOCKET` (what systemd does for Type=notify) and reads what the real binary tells it,
//! then proves the SIGTERM drain end to end with a real Redis.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{get_stream, Server};

/// Collects notification datagrams until `until` matches one or `within` passes.
fn collect(
    sock: &UnixDatagram,
    seen: &mut Vec<String>,
    within: Duration,
    until: impl Fn(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = until(&msg);
            seen.push(msg);
            if hit {
                return true;
            }
        }
    }
    false
}

#[tokio::test]
async fn ready_status_watchdog_and_stopping_arrive_in_order() {
    let path = common::temp_path("sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    let mut s = Server::start_with_env(
        "[shutdown]\ngrace = \"300ms\"\n",
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    assert!(
        collect(&sock, &mut seen, Duration::from_secs(5), |m| m
            .contains("READY=1")),
        "no READY: {seen:?}"
    );
    let ready = seen.last().unwrap().clone();
    assert!(
        ready.contains("STATUS=serving on 127.0.0.1:"),
        "READY carries a status: {ready}"
    );
    assert!(
        ready.contains("0 sessions") && ready.contains("registry off"),
        "{ready}"
    );
    // Half the watchdog period is 200 ms: several pets arrive within a second.
    assert!(collect(&sock, &mut seen, Duration::from_secs(2), |m| m
        .contains("WATCHDOG=1")));
    let before = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    collect(&sock, &mut seen, Duration::from_millis(900), |_| false);
    let pets = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() - before;
    assert!(pets >= 2, "watchdog petted {pets} times in 900 ms");
    s.session().await;
    s.signal("TERM");
    assert!(
        collect(&sock, &mut seen, Duration::from_secs(5), |m| m
            .contains("STOPPING=1")),
        "{seen:?}"
    );
    let stopping = seen.last().unwrap().clone();
    assert!(
        stopping.contains("STATUS=draining") && stopping.contains("1 sessions"),
        "{stopping}"
    );
    let ready_at = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    let first_pet = seen.iter().position(|m| m.contains("WATCHDOG=1")).unwrap();
    let stop_at = seen.iter().position(|m| m.contains("STOPPING=1")).unwrap();
    assert!(
        ready_at < first_pet && first_pet < stop_at,
        "order: {seen:?}"
    );
    // The watchdog keeps being petted during the drain, so a slow drain is not killed as a hang.
    let mut during_drain = Vec::new();
    assert!(collect(
        &sock,
        &mut during_drain,
        Duration::from_millis(400),
        |m| m.contains("WATCHDOG=1")
    ));
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_drain_turns_healthz_503_tells_streams_to_retry_then_removes_the_nodes_keys_and_exits_0(
) {
    let redis = Redis::start();
    let mut s = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"d1\"\n[redis]\nurl = \"{}\"\n[shutdown]\ngrace = \"500ms\"\n[cluster]\nadopt_orphans = false\n",
        redis.url()
    ));
    let sid = s.session().await;
    let _other = s.session().await;
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.keys("mcp:session:*").len()
            == 2)
    );
    let mut stream = get_stream(s.addr, &sid, None).await;
    stream.read_for(Duration::from_millis(50)).await;
    s.signal("TERM");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(s.health().await.0, 503, "healthz turns 503 first");
    assert!(!stream.ended, "streams stay open during the grace");
    let rest = stream.read_for(Duration::from_secs(5)).await;
    assert!(stream.ended, "the stream ends after the grace");
    assert!(
        rest.contains("retry: "),
        "a retry hint before the end: {rest:?}"
    );
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        redis.node_keys("mcp:*").is_empty(),
        "the node's keys are gone: {:?}",
        redis.node_keys("mcp:*")
    );
}

#[tokio::test]
async fn with_adoption_the_drain_releases_sessions_for_peers_instead_of_deleting_them() {
    let redis = Redis::start();
    let mut s = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"d2\"\n[redis]\nurl = \"{}\"\n[session]\nidle_timeout = \"10m\"\n[shutdown]\ngrace = \"200ms\"\n",
        redis.url()
    ));
    let sid = s.session().await;
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.keys("mcp:node:d2*").len()
            == 2)
    );
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(
        redis.node_keys("mcp:*"),
        vec![format!("mcp:session:{sid}")],
        "heartbeat and node set gone, the session's record kept"
    );
    let ttl = redis.cmd(&["PTTL", &format!("mcp:session:{sid}")]).int();
    assert!(
        ttl > 0 && ttl <= 600_000,
        "released records expire after the idle timeout, not the 30-day TTL: {ttl} ms"
    );
    assert!(
        s.wait_log(&["left the cluster"], Duration::from_secs(1)),
        "{}",
        s.logs()
    );
}
