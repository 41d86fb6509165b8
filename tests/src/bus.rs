//! Brokers for the bus tests: the machine's RabbitMQ and Redis, a private tansu per Kafka
//! test, librdkafka's mock cluster for Kafka fault injection; each test with its own
//! queue/topic/stream names.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::proxy::Proxy;

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The machine's RabbitMQ on 127.0.0.1:5672.
    Rabbit,
    /// A private tansu broker on a free port.
    Kafka,
    /// The machine's Redis on 127.0.0.1:6379.
    Redis,
}

/// A broker a test uses, with the names (prefix) it owns.
pub struct Broker {
    /// Which broker.
    pub kind: Kind,
    /// Where it listens.
    pub port: u16,
    /// The test's own queue/topic/stream prefix.
    pub prefix: String,
    child: Option<Child>,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

/// How a test takes the broker away from clients and gives it back.
pub enum Outage {
    /// A proxy in front of the broker cuts every connection (RabbitMQ, Redis).
    Proxy(Proxy),
    /// librdkafka's mock cluster takes its broker down (Kafka; see [`Broker::faulty`]).
    MockBroker,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The tansu binary: `$HB_TANSU`, or where scripts/install-tansu puts it.
pub fn tansu() -> PathBuf {
    let path = std::env::var_os("HB_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/hb/tansu/bin/tansu")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-tansu (scripts/test does)",
        path.display()
    );
    path
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_tansu(port: u16, advertised: u16) -> Child {
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts");
    wait_for_port(port);
    child
}

impl Broker {
    /// The broker of `kind`, with a fresh prefix.
    pub fn start(kind: Kind) -> Self {
        let (port, child) = match kind {
            Kind::Rabbit => (5672, None),
            Kind::Redis => (6379, None),
            Kind::Kafka => {
                let port = free_port();
                (port, Some(start_tansu(port, port)))
            }
        };
        Self {
            kind,
            port,
            prefix: prefix(),
            child,
            mock: None,
        }
    }

    /// A broker that can be taken away from every client and brought back without losing
    /// what it holds: RabbitMQ or Redis behind a [`Proxy`]; for Kafka, librdkafka's mock
    /// cluster (in this process, on a real TCP port; its topics pre-created, since it has no
    /// CreateTopics), because tansu 0.6 neither keeps data across a restart with its memory
    /// engine nor serves a consumer group correctly after a rebalance or a lost connection.
    pub fn faulty(kind: Kind) -> (Self, Outage) {
        if kind != Kind::Kafka {
            let (broker, proxy) = Self::behind_proxy(kind);
            return (broker, Outage::Proxy(proxy));
        }
        let mock = MockCluster::new(1).expect("mock cluster");
        let prefix = prefix();
        for topic in hb_bus::Topic::ALL {
            mock.create_topic(&format!("{prefix}{}", topic.suffix()), 3, 1)
                .expect("create topic");
        }
        let bootstrap = mock.bootstrap_servers();
        let port = bootstrap
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("mock bootstrap host:port");
        let broker = Self {
            kind,
            port,
            prefix,
            child: None,
            mock: Some(mock),
        };
        (broker, Outage::MockBroker)
    }

    /// The port clients that should suffer the outage connect to.
    pub fn outage_port(&self, outage: &Outage) -> u16 {
        match outage {
            Outage::Proxy(proxy) => proxy.port,
            Outage::MockBroker => self.port,
        }
    }

    /// Takes the broker away (`up = false`) or gives it back.
    pub fn set_up(&self, outage: &Outage, up: bool) {
        match (outage, &self.mock) {
            (Outage::Proxy(proxy), _) if up => proxy.restore(),
            (Outage::Proxy(proxy), _) => proxy.cut(),
            (Outage::MockBroker, Some(mock)) if up => mock.broker_up(1).expect("broker up"),
            (Outage::MockBroker, Some(mock)) => mock.broker_down(1).expect("broker down"),
            (Outage::MockBroker, None) => unreachable!("a mock outage needs the mock cluster"),
        }
    }

    /// The broker behind a [`Proxy`]; for Kafka, tansu advertises the proxy's port so that
    /// every client connection goes through it.
    pub fn behind_proxy(kind: Kind) -> (Self, Proxy) {
        if kind != Kind::Kafka {
            let broker = Self::start(kind);
            let proxy = Proxy::start(broker.port);
            return (broker, proxy);
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let advertised = listener.local_addr().expect("addr").port();
        let port = free_port();
        let child = start_tansu(port, advertised);
        let proxy = Proxy::on(listener, port);
        let broker = Self {
            kind,
            port,
            prefix: prefix(),
            child: Some(child),
            mock: None,
        };
        (broker, proxy)
    }

    /// The transport URL on `port` (the broker's, or a proxy's) with extra `&`-joined options.
    pub fn url(&self, port: u16, extra: &str) -> String {
        let p = &self.prefix;
        let url = match self.kind {
            Kind::Rabbit => {
                format!("rabbit://guest:guest@127.0.0.1:{port}/%2f?exchange={p}x&prefix={p}")
            }
            Kind::Kafka => {
                format!("kafka://127.0.0.1:{port}?prefix={p}&partitions=3&timeout_ms=5000")
            }
            Kind::Redis => format!("redis://127.0.0.1:{port}/0?prefix={p}&claim_idle_ms=3000"),
        };
        if extra.is_empty() {
            url
        } else {
            format!("{url}&{extra}")
        }
    }

    /// The transport URL on the broker's own port.
    pub fn direct(&self, extra: &str) -> String {
        self.url(self.port, extra)
    }

    /// A connection and a channel to the RabbitMQ broker, as guest.
    pub async fn rabbit_channel(&self) -> (lapin::Connection, lapin::Channel) {
        let uri = format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port);
        let connection = lapin::Connection::connect(&uri, Default::default())
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        (connection, channel)
    }

    /// A connection to the Redis server's database 0.
    pub async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port))
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `future` to completion on a runtime of its own (for the synchronous tests).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn prefix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("hbt{}.", &id[..10])
}

/// Breaks the test's dead-letter destination, so that writing a dead letter fails while the
/// rest of the bus works: on Redis the stream's key becomes a string (`WRONGTYPE`), on
/// RabbitMQ the queue is deleted (the publish comes back unroutable). Not for Kafka.
pub fn break_dead_letters(broker: &Broker) {
    let name = format!("{}dead", broker.prefix);
    block_on(async {
        match broker.kind {
            Kind::Rabbit => {
                let (_connection, channel) = broker.rabbit_channel().await;
                channel
                    .queue_delete(name.as_str().into(), Default::default())
                    .await
                    .expect("queue.delete");
            }
            Kind::Redis => {
                let () = redis::pipe()
                    .cmd("DEL")
                    .arg(&name)
                    .ignore()
                    .cmd("SET")
                    .arg(&name)
                    .arg("not a stream")
                    .ignore()
                    .query_async(&mut broker.redis_connection().await)
                    .await
                    .expect("DEL, SET");
            }
            Kind::Kafka => panic!("no way to break a Kafka dead-letter topic alone"),
        }
    });
}

/// Messages in the test's dead-letter queue, topic or stream.
pub fn dead_letters(broker: &Broker) -> usize {
    let name = format!("{}dead", broker.prefix);
    match broker.kind {
        Kind::Rabbit => block_on(async {
            use lapin::options::QueueDeclareOptions;
            let (_connection, channel) = broker.rabbit_channel().await;
            let options = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let queue = channel
                .queue_declare(name.as_str().into(), options, Default::default())
                .await
                .expect("dead-letter queue exists");
            queue.message_count() as usize
        }),
        Kind::Redis => block_on(async {
            redis::cmd("XLEN")
                .arg(&name)
                .query_async(&mut broker.redis_connection().await)
                .await
                .expect("XLEN")
        }),
        Kind::Kafka => {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", format!("127.0.0.1:{}", broker.port))
                .set("group.id", format!("{name}-count"))
                .create()
                .expect("consumer");
            (0..3)
                .map(|p| {
                    let (low, high) = consumer
                        .fetch_watermarks(&name, p, Duration::from_secs(10))
                        .expect("watermarks");
                    (high - low) as usize
                })
                .sum()
        }
    }
}

/// Receives from `consumer` until `n` messages arrived (at most `limit`), then checks that no
/// more come within 2 s.
pub async fn exactly(
    consumer: &mut hb_bus::Consumer,
    n: usize,
    limit: Duration,
) -> Vec<hb_bus::Received> {
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while got.len() < n && Instant::now() < deadline {
        got.extend(consumer.recv(10).await.expect("recv"));
    }
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        got.extend(consumer.recv(10).await.expect("recv"));
    }
    let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got.len(), n, "received {ids:?}");
    got
}
