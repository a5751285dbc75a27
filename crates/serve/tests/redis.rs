//! `--redis`: rate limits and failed authentications counted across
//! replicas; a Redis that goes away leaves each replica counting on its
//! own, says so in /readyz, and is used again when it returns.
//! Needs `redis-server` (scripts/start-redis.sh installs it).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{assert_error, open, shop, Client};

/// A throwaway Redis on a free port, killed when dropped.
struct TestRedis {
    child: Child,
    port: u16,
}

impl TestRedis {
    fn start_on(port: u16) -> TestRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (run scripts/start-redis.sh)");
        let r = TestRedis { child, port };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn start() -> TestRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        TestRedis::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two replicas of one shop (two servers over copies of the test shop, as
/// two processes over one store would be), configured by `cfg`, on `redis`.
fn replicas_with(
    redis: Option<&str>,
    cfg: impl Fn(&mut aisle_serve::ServeConfig),
) -> (Vec<tempfile::TempDir>, Client, Client) {
    static N: AtomicU32 = AtomicU32::new(0);
    // A shop name of its own: the buckets of other tests are not ours.
    let name = format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut dirs = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let url = shop(dir.path());
        let (_app, c) = open(&url, |c| {
            c.redis = redis.map(str::to_string);
            c.shop = name.clone();
            c.search.no_semantic = true;
            cfg(c);
        });
        dirs.push(dir);
        clients.push(c);
    }
    let b = clients.pop().unwrap();
    let a = clients.pop().unwrap();
    (dirs, a, b)
}

/// [`replicas_with`] at `rate` requests per second per client.
fn replicas(redis: Option<&str>, rate: f64) -> (Vec<tempfile::TempDir>, Client, Client) {
    replicas_with(redis, |c| c.rate_limit = Some(rate))
}

#[tokio::test]
async fn a_clients_rate_limit_is_one_budget_across_replicas() {
    let redis = TestRedis::start();
    let (_d, a, b) = replicas(Some(&redis.url()), 4.0);
    // A burst of 4: two on each replica, then the next on either is refused.
    for c in [&a, &b, &a, &b] {
        let (s, v) = c.get("/v1/popular").await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = b.get("/v1/popular").await;
    assert_error(s, &v, StatusCode::TOO_MANY_REQUESTS);
    let (s, _) = a.get("/v1/popular").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // One token comes back every 1/4 s, to whichever replica asks first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = b.get("/v1/popular").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = a.get("/v1/popular").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let (_, ready) = a.get("/readyz").await;
    assert_eq!(ready["redis"], "connected", "{ready}");
    assert_eq!(ready["status"], "ok", "{ready}");
}

#[tokio::test]
async fn without_redis_each_replica_counts_on_its_own() {
    let (_d, a, b) = replicas(None, 4.0);
    for c in [&a, &a, &a, &a, &b, &b, &b, &b] {
        let (s, _) = c.get("/v1/popular").await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, ready) = a.get("/readyz").await;
    assert!(ready.get("redis").is_none(), "{ready}");
}

#[tokio::test]
async fn failed_authentications_are_counted_across_replicas() {
    let redis = TestRedis::start();
    let (_d, a, b) = replicas_with(Some(&redis.url()), |c| {
        c.admin_key = Some("the-right-key-0123".into());
        c.auth_failure_burst = 3.0;
        c.auth_failure_rate = 0.01;
    });
    let cs = [a, b];
    // Three wrong keys spread over both replicas use the allowance...
    for c in [&cs[0], &cs[1], &cs[0]] {
        let (s, _) = c.call("GET", "/v1/popular", None, Some("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // ...so the other replica refuses the fourth try as well.
    let (s, v) = cs[1].call("GET", "/v1/popular", None, Some("wrong")).await;
    assert_error(s, &v, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_lost_redis_leaves_replicas_serving_and_counting_alone_until_it_returns() {
    let mut redis = TestRedis::start();
    let port = redis.port;
    let (_d, a, b) = replicas(Some(&redis.url()), 1000.0);
    let (s, _) = a.get("/v1/popular").await;
    assert_eq!(s, StatusCode::OK);
    redis.stop();
    // Requests keep being answered, each within the Redis timeout.
    for c in [&a, &b, &a, &b] {
        let t = Instant::now();
        let (s, v) = c.get("/v1/popular").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    let (s, ready) = a.get("/readyz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["redis"], "down", "{ready}");
    assert!(
        ready["reason"].as_str().unwrap().contains("Redis"),
        "{ready}"
    );
    let (_, metrics) = a.get("/metrics").await;
    assert!(
        metrics.as_str().unwrap().contains("aisle_redis_up 0"),
        "{metrics}"
    );
    // It comes back on the same port: used again within a few seconds.
    let _back = TestRedis::start_on(port);
    let t = Instant::now();
    loop {
        let (_, ready) = a.get("/readyz").await;
        if ready["redis"] == "connected" {
            assert_eq!(ready["status"], "ok", "{ready}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_unparseable_redis_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let mut cfg = aisle_serve::ServeConfig::new(&url, "127.0.0.1:0".parse().unwrap());
    cfg.redis = Some("http://not-redis".into());
    let e = aisle_serve::App::open(cfg).err().expect("refused");
    assert!(e.to_string().contains("not a Redis URL"), "{e}");
}
