//! A minimal HTTP/1.1 client over one kept-alive TCP connection: what the OTLP and API
//! benchmarks send their requests with, so that what is measured is the server.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// One kept-alive connection.
pub(crate) struct Client {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Self {
            addr,
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Sends a request; returns the status and the body.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut status = String::new();
        self.reader.read_line(&mut status)?;
        let code: u16 = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("no status line: {status:?}"))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the connection closed in the answer's head");
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    length = v.parse::<usize>().ok();
                } else if k == "transfer-encoding" && v.contains("chunked") {
                    chunked = true;
                }
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim(), 16)?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(n) = length {
            out.resize(n, 0);
            self.reader.read_exact(&mut out)?;
        }
        Ok((code, out))
    }
}

/// A collector on `db` (its socket and log in `dir`) with HTTP on a free port; the
/// process and the address it printed. Stop it with SIGTERM.
pub(crate) fn serve_http(dir: &Path, db: &Path) -> anyhow::Result<(Child, SocketAddr)> {
    std::fs::create_dir_all(dir)?;
    let log = dir.join("collector.log");
    let child = Command::new(std::env::current_exe()?)
        .args([
            "collector",
            "serve",
            "--http",
            "127.0.0.1:0",
            "--log",
            "info",
            "--socket",
        ])
        .arg(dir.join("logbook.sock"))
        .arg("--db")
        .arg(db)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    // A 10M-record store takes a while to open.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .filter(|l| l.contains("HTTP listening"))
            .find_map(|l| l.split("http=").nth(1))
            .and_then(|a| a.split_whitespace().next())
        {
            return Ok((child, addr.parse()?));
        }
        if Instant::now() > deadline {
            bail!("the collector did not start: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a collector as SIGTERM does and waits for it.
pub(crate) fn stop(mut child: Child) -> anyhow::Result<()> {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()?;
    child.wait()?;
    Ok(())
}
