//! Test harness: starts the real `hearth` binary on a 127.0.0.x address with a temporary data
//! directory, and speaks raw XML to it over real sockets (plain and TLS).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const DOMAIN: &str = "localhost";
const WAIT: Duration = Duration::from_secs(10);

/// Each server gets its own loopback address, so tests can run in parallel.
static NEXT_HOST: AtomicU8 = AtomicU8::new(20);

pub struct TestServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
    /// The server-to-server listener (STARTTLS).
    pub s2s_addr: SocketAddr,
    /// The HTTPS listener (WebSocket, BOSH, upload).
    pub http_addr: SocketAddr,
    /// `/health` and `/metrics`.
    pub internal_addr: SocketAddr,
    /// The external component listener (XEP-0114), open when `extra` configures a component
    /// with `[components.hosts."…"]`.
    pub component_addr: SocketAddr,
    pub domain: String,
    data_root: Option<PathBuf>,
}

pub fn free_port(ip: &str) -> u16 {
    free_ports::<1>(ip)[0]
}

/// `N` distinct ports free on `ip`: all probes stay bound until every port is chosen, so the
/// kernel cannot hand out the same one twice.
pub fn free_ports<const N: usize>(ip: &str) -> [u16; N] {
    let probes: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((ip, 0)).expect("bind probe"))
        .collect();
    std::array::from_fn(|i| probes[i].local_addr().unwrap().port())
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Starts hearth with the base test config plus `extra` TOML: whole sections other than
    /// `[c2s]` and `[components]` (whose subtables such as `[components.hosts."irc.localhost"]`
    /// are fine), or keys of `[c2s]` when `extra` starts with them (it is appended right after).
    pub fn start_with(extra: &str) -> Self {
        Self::start_federating(DOMAIN, "", extra)
    }

    /// Starts hearth for `domain`, with `s2s_keys` added to its `[s2s]` section and `extra` as
    /// for [`TestServer::start_with`].
    pub fn start_federating(domain: &str, s2s_keys: &str, extra: &str) -> Self {
        let host = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
        let ip = format!("127.0.0.{host}");
        let [
            port,
            tls_port,
            s2s_port,
            http_port,
            internal_port,
            proxy_port,
            component_port,
        ] = free_ports(&ip);
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let tls_addr: SocketAddr = format!("{ip}:{tls_port}").parse().unwrap();
        let s2s_addr: SocketAddr = format!("{ip}:{s2s_port}").parse().unwrap();
        let http_addr: SocketAddr = format!("{ip}:{http_port}").parse().unwrap();
        let internal_addr: SocketAddr = format!("{ip}:{internal_port}").parse().unwrap();
        let component_addr: SocketAddr = format!("{ip}:{component_port}").parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hearth.toml");
        // The bytestream proxy and the component listener get ports of their own too, so
        // servers do not compete for 7777 and 5347.
        let base = format!(
            "domain = \"{domain}\"\ndata_dir = \"{}\"\n[log]\nlevel = \"debug\"\n[s2s]\nlisten = [\"{s2s_addr}\"]\n{s2s_keys}\n[modules.proxy65]\nlisten = [\"{ip}:{proxy_port}\"]\n[components]\nlisten = [\"{component_addr}\"]\n[c2s]\nlisten = [\"{addr}\"]\ndirect_tls_listen = [\"{tls_addr}\"]\n",
            dir.path().join("data").display()
        );
        // The HTTP listeners go into the test's own [http] section if it has one.
        let http = format!(
            "[http]\nlisten = [\"{http_addr}\"]\ninternal_listen = [\"{internal_addr}\"]\n"
        );
        let text = if extra.contains("[http]\n") {
            format!("{base}{}", extra.replacen("[http]\n", &http, 1))
        } else {
            format!("{base}{extra}\n{http}")
        };
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.path().join("hearth.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hearth");
        let mut server = TestServer {
            child: Some(child),
            dir,
            config,
            addr,
            tls_addr,
            s2s_addr,
            http_addr,
            internal_addr,
            component_addr,
            domain: domain.to_string(),
            data_root: None,
        };
        server.wait_ready();
        server
    }

    /// A new process on the stopped `old` server's address, config and data directory.
    pub fn restart_from(old: &TestServer) -> TestServer {
        assert!(old.child.is_none(), "stop the old server first");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(old.dir.path().join("hearth.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["serve", "--config"])
            .arg(&old.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hearth");
        // The temporary directory stays owned by `old`; the new server borrows its path.
        let dir = tempfile::tempdir().unwrap();
        let mut server = TestServer {
            child: Some(child),
            dir,
            config: old.config.clone(),
            addr: old.addr,
            tls_addr: old.tls_addr,
            s2s_addr: old.s2s_addr,
            http_addr: old.http_addr,
            internal_addr: old.internal_addr,
            component_addr: old.component_addr,
            domain: old.domain.clone(),
            data_root: Some(old.dir.path().to_path_buf()),
        };
        server.wait_ready();
        server
    }

    fn root(&self) -> &std::path::Path {
        self.data_root.as_deref().unwrap_or(self.dir.path())
    }

    fn wait_ready(&mut self) {
        // Starting is slower than answering when many tests start servers at once on 2 cores.
        let deadline = Instant::now() + 3 * WAIT;
        // The internal HTTP listener is bound after all the XMPP ones (components included).
        while std::net::TcpStream::connect(self.addr).is_err()
            || std::net::TcpStream::connect(self.internal_addr).is_err()
        {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hearth exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "hearth did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("hearth.log")).unwrap_or_default()
    }

    /// Runs `hearth --config … ARGS` with `stdin`, returning (success, stdout+stderr).
    pub fn cli(&self, args: &[&str], stdin: &str) -> (bool, String) {
        run_cli(&self.config, args, stdin)
    }

    pub fn add_user(&self, user: &str, password: &str) {
        let (ok, out) = self.cli(&["user", "add", user], &format!("{password}\n"));
        assert!(ok, "user add failed: {out}");
    }

    /// The certificate (chain) the server presents: `[tls] certificate` when configured, else
    /// the self-signed one it generated.
    pub fn cert_path(&self) -> PathBuf {
        let config = std::fs::read_to_string(&self.config).unwrap_or_default();
        config
            .lines()
            .find_map(|l| l.strip_prefix("certificate = \""))
            .map(|rest| PathBuf::from(rest.trim_end_matches('"')))
            .unwrap_or_else(|| self.root().join("data/tls/selfsigned.crt"))
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "hearth did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, no chance to flush anything.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn signal(&self, sig: &str) {
        let id = self.child.as_ref().expect("running").id().to_string();
        assert!(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(id)
                .status()
                .unwrap()
                .success()
        );
    }

    pub fn tls_connector(&self) -> tokio_rustls::TlsConnector {
        tls_connector(&self.cert_path(), &[])
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- hearth log ({}) ---\n{}",
                self.config.display(),
                self.log()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run_cli(config: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hearth");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A TLS client trusting only the test server's self-signed certificate.
pub fn tls_connector(ca: &std::path::Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read test certificate") {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A raw XML client: send strings, wait for substrings. Received text is matched with `"`
/// normalised to `'`, so expectations do not depend on the server's quoting style.
pub struct Raw {
    pub io: Option<Io>,
    buf: String,
    /// The domain streams are opened to.
    domain: String,
    /// The stream header `open` sends (a client's to `domain` unless set).
    header: Option<String>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Self::connect_to(addr, DOMAIN).await
    }

    /// A client of the server for `domain`.
    pub async fn connect_to(addr: SocketAddr, domain: &str) -> Raw {
        Raw {
            io: Some(Io::Plain(TcpStream::connect(addr).await.expect("connect"))),
            buf: String::new(),
            domain: domain.to_string(),
            header: None,
        }
    }

    /// Another server's connection: streams are opened from `from` to `domain` in
    /// `jabber:server`, with the dialback namespace declared.
    pub async fn connect_as_server(addr: SocketAddr, from: &str, domain: &str) -> Raw {
        let mut raw = Self::connect_to(addr, domain).await;
        raw.header = Some(format!(
            "<?xml version='1.0'?><stream:stream from='{from}' to='{domain}' version='1.0' xmlns='jabber:server' xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams'>"
        ));
        raw
    }

    pub fn from_tls(tls: TlsStream<TcpStream>) -> Raw {
        Raw {
            io: Some(Io::Tls(Box::new(tls))),
            buf: String::new(),
            domain: DOMAIN.to_string(),
            header: None,
        }
    }

    pub async fn send(&mut self, data: &str) {
        if std::env::var_os("HEARTH_TEST_TRACE").is_some() {
            eprintln!(">>> {data}");
        }
        let r = match self.io.as_mut().expect("open") {
            Io::Plain(s) => s.write_all(data.as_bytes()).await,
            Io::Tls(s) => s.write_all(data.as_bytes()).await,
        };
        r.expect("send");
    }

    /// Like `send` but ignores errors (the server may already have closed).
    pub async fn try_send(&mut self, data: &[u8]) -> bool {
        match self.io.as_mut().expect("open") {
            Io::Plain(s) => s.write_all(data).await.is_ok(),
            Io::Tls(s) => s.write_all(data).await.is_ok(),
        }
    }

    async fn read_more(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = match self.io.as_mut().expect("open") {
            Io::Plain(s) => s.read(&mut chunk).await,
            Io::Tls(s) => s.read(&mut chunk).await,
        }
        .unwrap_or(0);
        if std::env::var_os("HEARTH_TEST_TRACE").is_some() {
            eprintln!("<<< {}", String::from_utf8_lossy(&chunk[..n]));
        }
        self.buf
            .push_str(&String::from_utf8_lossy(&chunk[..n]).replace('"', "'"));
        n
    }

    /// Waits until `needle` was received; returns everything up to and including it.
    pub async fn expect(&mut self, needle: &str) -> String {
        let needle = needle.replace('"', "'");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.buf.find(&needle) {
                let end = pos + needle.len();
                let head = self.buf[..end].to_string();
                self.buf.drain(..end);
                return head;
            }
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(0) => panic!(
                    "connection closed while waiting for {needle:?}; received: {:?}",
                    self.buf
                ),
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {needle:?}; received: {:?}", self.buf),
            }
        }
    }

    /// Waits for whichever of `needles` comes first; returns everything up to and including it.
    pub async fn expect_one_of(&mut self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let first = needles
                .iter()
                .filter_map(|n| self.buf.find(&n.replace('"', "'")).map(|p| p + n.len()))
                .min();
            if let Some(end) = first {
                return self.buf.drain(..end).collect();
            }
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(0) => panic!(
                    "connection closed while waiting for {needles:?}; received: {:?}",
                    self.buf
                ),
                Ok(_) => {}
                Err(_) => panic!(
                    "timed out waiting for {needles:?}; received: {:?}",
                    self.buf
                ),
            }
        }
    }

    /// The start tag (and everything before it) of the next element containing `needle`.
    pub async fn expect_tag(&mut self, needle: &str) -> String {
        let head = self.expect(needle).await;
        let rest = self.expect(">").await;
        format!("{head}{rest}")
    }

    /// The whole top-level stanza whose start tag contains `needle`.
    pub async fn expect_stanza(&mut self, needle: &str) -> String {
        let tag = self.expect_tag(needle).await;
        if tag.ends_with("/>") {
            return tag;
        }
        let start = tag.rfind(['<']).expect("a start tag");
        let name: String = tag[start + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .collect();
        let rest = self.expect(&format!("</{name}>")).await;
        format!("{tag}{rest}")
    }

    /// Reads until the server closes the connection; returns all that was received.
    pub async fn closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(0) => return std::mem::take(&mut self.buf),
                Ok(_) => {}
                Err(_) => panic!(
                    "server did not close the connection; received: {:?}",
                    self.buf
                ),
            }
        }
    }

    /// Asserts a stream error with `condition` followed by the end of the stream and connection.
    pub async fn expect_stream_error(&mut self, condition: &str) {
        let rest = self.closed().await;
        let needle = format!("<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
        assert!(
            rest.contains("<stream:error>") && rest.contains(&needle),
            "expected stream error {condition}, got {rest:?}"
        );
        assert!(
            rest.trim_end().ends_with("</stream:stream>"),
            "stream not closed after error: {rest:?}"
        );
    }

    /// Nothing arrives for a short while (e.g. no presence leak).
    pub async fn expect_silence(&mut self, ms: u64) {
        let r = tokio::time::timeout(Duration::from_millis(ms), self.read_more()).await;
        if let Ok(n) = r {
            assert!(
                n == 0 && self.buf.is_empty(),
                "unexpected data: {:?}",
                self.buf
            );
        }
        assert!(self.buf.is_empty(), "unexpected data: {:?}", self.buf);
    }

    /// A ping round trip: everything this client sent before has been processed by the server.
    /// Other data received meanwhile stays buffered for later expectations.
    pub async fn sync(&mut self) {
        let ping = format!(
            "<iq type='get' id='sync' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
            self.domain
        );
        self.send(&ping).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.buf.find("id='sync'") {
                let start = self.buf[..pos].rfind('<').expect("start of the reply");
                if let Some(len) = self.buf[pos..].find("/>") {
                    self.buf.drain(start..pos + len + 2);
                    return;
                }
            }
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(0) | Err(_) => panic!("no answer to the sync ping; received: {:?}", self.buf),
                Ok(_) => {}
            }
        }
    }

    pub async fn open(&mut self) -> String {
        let header = self
            .header
            .clone()
            .unwrap_or_else(|| header_to(&self.domain));
        self.send(&header).await;
        self.expect("</stream:features>").await
    }

    /// STARTTLS on an opened plain stream; returns the features of the new stream.
    pub async fn starttls(&mut self, connector: &tokio_rustls::TlsConnector) -> String {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        self.expect("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let Some(Io::Plain(tcp)) = self.io.take() else {
            panic!("not a plain stream")
        };
        let name = rustls::pki_types::ServerName::try_from(self.domain.clone()).unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        self.io = Some(Io::Tls(Box::new(tls)));
        self.buf.clear();
        self.open().await
    }

    pub fn tls(&self) -> &rustls::ClientConnection {
        match self.io.as_ref() {
            Some(Io::Tls(s)) => s.get_ref().1,
            _ => panic!("not TLS"),
        }
    }

    /// The `tls-exporter` channel binding of this connection (RFC 9266).
    pub fn tls_exporter(&self) -> Vec<u8> {
        let mut out = vec![0u8; 32];
        self.tls()
            .export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
            .unwrap();
        out
    }

    pub async fn plain_auth(&mut self, user: &str, password: &str) -> String {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        ))
        .await;
        self.expect_one_of(&["</success>", "</failure>"]).await
    }

    /// Binds `resource` and returns the full JID.
    pub async fn bind(&mut self, resource: &str) -> String {
        self.send(&format!(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let reply = self.expect("</iq>").await;
        text_of(&reply, "jid").expect("bound jid").to_string()
    }
}

/// The value of the first `name='…'` attribute in raw XML.
pub fn attr<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("{name}='"))? + name.len() + 2;
    Some(&xml[start..start + xml[start..].find('\'')?])
}

/// The text of the first `<name>…</name>` (without attributes) in raw XML.
pub fn text_of<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    Some(&xml[start..start + xml[start..].find('<')?])
}

pub fn header() -> String {
    header_to(DOMAIN)
}

pub fn header_to(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
}

/// A logged-in client with `resource` bound (STARTTLS, PLAIN, bind).
pub async fn login(
    server: &TestServer,
    user: &str,
    password: &str,
    resource: &str,
) -> (Raw, String) {
    let mut c = Raw::connect_to(server.addr, &server.domain).await;
    c.open().await;
    c.starttls(&server.tls_connector()).await;
    let r = c.plain_auth(user, password).await;
    assert!(
        r.contains("<success"),
        "login failed: {r}\n{}",
        server.log()
    );
    c.open().await;
    let jid = c.bind(resource).await;
    (c, jid)
}

/// alice (resource `a`) and bob (resource `b`) logged in; with `available`, both have sent
/// initial presence and read its echo.
pub async fn alice_and_bob(server: &TestServer, available: bool) -> (Raw, Raw) {
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(server, "alice", "alicepass1", "a").await;
    let (mut b, _) = login(server, "bob", "bobpass12", "b").await;
    if available {
        for c in [&mut a, &mut b] {
            c.send("<presence/>").await;
            c.expect_stanza("<presence").await;
        }
    }
    (a, b)
}
