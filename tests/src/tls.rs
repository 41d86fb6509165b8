//! TLS servers of the tests' own: a private CA and its certificates ([`Pki`], made with
//! rcgen), and servers started with them on free ports, their files in temporary directories,
//! killed when dropped: Redis with `--tls-port` ([`RedisTls`]), a RabbitMQ node of its own with
//! an `ssl` listener ([`RabbitTls`]), and `openssl s_server` ([`TlsListener`]) standing in for a
//! Kafka broker's TLS listener (no TLS Kafka broker is installable here: see tests/tests/tls.rs).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::bus::free_port;
use crate::log_tail;

/// A private CA, a server certificate it signed (for `localhost` and `127.0.0.1`), a client
/// certificate it signed, and another CA that signed nothing of these (the wrong one to trust).
pub struct Pki {
    dir: TempDir,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("CA key");
    let pem = params.self_signed(&key).expect("CA certificate").pem();
    (params, key, pem)
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    names: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("certificate parameters");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// Makes the CA and certificates (ECDSA P-256) in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hb-pki-")
            .tempdir()
            .expect("temporary directory");
        let (params, key, ca_pem) = ca("hb test CA");
        let issuer = Issuer::new(params, key);
        let (server, server_key) = leaf(
            &issuer,
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(
            &issuer,
            &[],
            "hb-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (_, _, other_pem) = ca("another CA");
        for (name, text) in [
            ("ca.pem", ca_pem.as_str()),
            ("server.pem", &server),
            ("server.key", &server_key),
            ("client.pem", &client),
            ("client.key", &client_key),
            ("other-ca.pem", &other_pem),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write a PEM file");
        }
        // Servers running as another user (a RabbitMQ started through its wrapper) read them.
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(dir.path())
            .status();
        Self { dir }
    }

    /// A file of the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate (PEM) that signed the server's and the client's.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A CA that signed neither.
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.pem")
    }

    /// The server's certificate and key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.path("server.pem"), self.path("server.key"))
    }

    /// The client's certificate and key.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.path("client.pem"), self.path("client.key"))
    }

    /// `tls_cert=...&tls_key=...` of the client certificate, for a URL's query.
    pub fn client_options(&self) -> String {
        let (cert, key) = self.client();
        format!("tls_cert={}&tls_key={}", cert.display(), key.display())
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits until 127.0.0.1:`port` accepts connections, or panics with the log's tail.
fn wait_listening(port: u16, child: &mut Child, log: &Path, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("{what} exited ({exit}) before listening: {}", log_tail(log));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within {limit:?}: {}",
            log_tail(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_file(dir: &Path, name: &str) -> (PathBuf, std::fs::File) {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("log file");
    (path, file)
}

/// A private `redis-server` listening for TLS only, with the [`Pki`]'s server certificate.
pub struct RedisTls {
    _dir: TempDir,
    child: Child,
    port: u16,
}

impl RedisTls {
    /// Starts it; `password` (if any) is `requirepass`; clients must present a certificate of
    /// the CA when `client_certificates`.
    pub fn start(pki: &Pki, password: Option<&str>, client_certificates: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hb-redis-tls-")
            .tempdir()
            .expect("temporary directory");
        let port = free_port();
        let (cert, key) = pki.server();
        let (log_path, log) = log_file(dir.path(), "redis.log");
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .arg("--tls-ca-cert-file")
            .arg(pki.ca())
            .arg("--tls-auth-clients")
            .arg(if client_certificates { "yes" } else { "no" })
            .arg("--dir")
            .arg(dir.path());
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("redis-server starts (scripts/brokers installs it)");
        wait_listening(
            port,
            &mut child,
            &log_path,
            "redis-server --tls-port",
            Duration::from_secs(20),
        );
        Self {
            _dir: dir,
            child,
            port,
        }
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RedisTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a process group (a server that starts children: RabbitMQ's script, epmd aside).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// A RabbitMQ node of the test's own (its name, directories, ports and configuration in a
/// temporary directory, beside any system node): one AMQPS listener on 127.0.0.1 with the
/// [`Pki`]'s server certificate, no plain listener, no plugins; user `guest`/`guest`.
pub struct RabbitTls {
    dir: TempDir,
    child: Child,
    port: u16,
}

/// How long a RabbitMQ node may take to open its listener (about 8 s on 2 cores).
const RABBIT_START: Duration = Duration::from_secs(60);

impl RabbitTls {
    /// Starts the node and waits until its TLS listener accepts connections.
    pub fn start(pki: &Pki) -> Self {
        let server = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        assert!(
            server.exists(),
            "{} is missing: run scripts/brokers (installs Debian's rabbitmq-server)",
            server.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("hb-rabbit-tls-")
            .tempdir()
            .expect("temporary directory");
        let d = dir.path();
        let port = free_port();
        let dist_port = free_port();
        let (cert, key) = pki.server();
        let config = format!(
            "listeners.tcp = none\n\
             listeners.ssl.default = 127.0.0.1:{port}\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {cert}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n\
             loopback_users = none\n",
            ca = pki.ca().display(),
            cert = cert.display(),
            key = key.display(),
        );
        let config_path = d.join("rabbitmq.conf");
        std::fs::write(&config_path, config).expect("rabbitmq.conf");
        std::fs::write(d.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        let (log_path, log) = log_file(d, "rabbitmq.out");
        let node = format!("hb-tls-{}-{port}@localhost", std::process::id());
        let mut command = Command::new(server);
        // The scripts under /usr/lib/rabbitmq/bin run as the calling user (the /usr/sbin
        // wrapper would switch to the rabbitmq user); HOME holds the node's Erlang cookie.
        command
            .env("HOME", d)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", &config_path)
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", server.display()));
        wait_listening(
            port,
            &mut child,
            &log_path,
            "rabbitmq-server (ssl listener)",
            RABBIT_START,
        );
        Self { dir, child, port }
    }

    /// The AMQPS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's log directory (for a failure message).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }
}

impl Drop for RabbitTls {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// `openssl s_server` with the [`Pki`]'s server certificate: completes TLS handshakes and
/// writes what clients send after it (and TLS alerts) to its log. It serves no protocol.
pub struct TlsListener {
    dir: TempDir,
    child: Child,
    port: u16,
}

impl TlsListener {
    /// Starts it; with `client_certificates`, a client must present a certificate of the CA.
    pub fn start(pki: &Pki, client_certificates: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hb-s-server-")
            .tempdir()
            .expect("temporary directory");
        let port = free_port();
        let (cert, key) = pki.server();
        let (log_path, log) = log_file(dir.path(), "s_server.log");
        let mut command = Command::new("openssl");
        command
            .arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .arg("-CAfile")
            .arg(pki.ca());
        if client_certificates {
            command.args(["-Verify", "1"]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("openssl s_server starts (scripts/test installs openssl)");
        wait_listening(
            port,
            &mut child,
            &log_path,
            "openssl s_server",
            Duration::from_secs(10),
        );
        Self { dir, child, port }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s_server.log")).unwrap_or_default()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
