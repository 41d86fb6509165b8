//! A private S3-compatible server for tests: each [`S3Server`] is an `s3s-fs` process of its own
//! on a free 127.0.0.1 port, storing its buckets as directories of a temporary directory,
//! requiring the credentials [`ACCESS_KEY`] / [`SECRET_KEY`], killed when dropped.
//!
//! The binary is `$HB_S3S`, or where `scripts/s3-server` installs it
//! (`~/.cache/hb/s3s/bin/s3s-fs`). Buckets are created with a plain HTTP/1.0 `PUT /BUCKET`
//! signed with AWS Signature Version 4 here, independently of the client under test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::bus::free_port;
use crate::influx::http;
use crate::log_tail as tail;

/// The access key id every [`S3Server`] accepts.
pub const ACCESS_KEY: &str = "hb-test-access-key";
/// The secret key every [`S3Server`] accepts.
pub const SECRET_KEY: &str = "hb-test-secret-key";
/// The region requests are signed for (s3s-fs accepts any).
pub const REGION: &str = "us-east-1";

/// How long the server may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The s3s-fs binary: `$HB_S3S`, or where scripts/s3-server installs it; panics with what to run
/// when it is missing.
pub fn s3s_fs() -> PathBuf {
    let path = std::env::var_os("HB_S3S")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/hb/s3s/bin/s3s-fs")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/s3-server (installs s3s-fs 0.14.1; scripts/test does)",
        path.display()
    );
    path
}

/// A private s3s-fs.
pub struct S3Server {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a server and waits until it answers.
    pub fn launch() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hb-s3s-")
            .tempdir()
            .expect("temporary directory");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("create data directory");
        let log_path = dir.path().join("s3s-fs.log");
        let log = std::fs::File::create(&log_path).expect("s3s-fs.log");
        let port = free_port();
        let binary = s3s_fs();
        let mut child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        let deadline = Instant::now() + START_TIMEOUT;
        // Any HTTP answer (an unsigned `GET /` is refused) means it is up.
        while http(port, "GET", "/", b"").is_err() {
            if let Ok(Some(exit)) = child.try_wait() {
                panic!(
                    "s3s-fs exited ({exit}) before answering: {}",
                    tail(&log_path)
                );
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not answer on 127.0.0.1:{port} within {START_TIMEOUT:?}: {}",
                tail(&log_path)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            dir,
            port,
            child: Some(child),
        }
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, the `endpoint=` of an `s3://` URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory that holds the buckets (one subdirectory each).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates a bucket named `hb-STEM-<random>` and returns its name.
    pub fn unique_bucket(&self, stem: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("hb-{stem}-{}", &id[..12]);
        self.create_bucket(&name);
        name
    }

    /// Creates `bucket` (`PUT /BUCKET`, signed); panics unless the server answers 200.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.signed("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// Sends a body-less request signed with AWS Signature Version 4; returns status and body.
    pub fn signed(&self, method: &str, path: &str) -> (u16, String) {
        let host = format!("127.0.0.1:{}", self.port);
        let now = chrono::Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let date = now.format("%Y%m%d").to_string();
        let payload_hash = hex::encode(Sha256::digest(b""));
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload_hash}\n\
             x-amz-date:{amz_date}\n\n{signed_headers}\n{payload_hash}"
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac_sha256(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes());
        for part in [REGION, "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {host}\r\nx-amz-content-sha256: {payload_hash}\r\n\
             x-amz-date: {amz_date}\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed_headers}, \
             Signature={signature}\r\nContent-Length: 0\r\n\r\n"
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("s3s-fs answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read answer");
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad answer: {raw}"));
        (status, body.to_owned())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; the error case of `new_from_slice` cannot happen.
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}
