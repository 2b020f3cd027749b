//! A small key-value server instrumented the way tokio's mini-redis is: `#[instrument]`
//! on the connection handler and on each command it applies, spans spawned per
//! connection, and no run id anywhere. It serves on 127.0.0.1, runs its own client
//! against itself, then exits; configured by the environment (`LOGBOOK_ENDPOINT`) as a
//! user's program would be.
//!
//! ```text
//! logbook-e2e-kv CONNECTIONS
//! ```
//!
//! Each connection sends `SET k<i> v<i>`, `GET k<i>`, and, on the last connection,
//! `INCR k<i>` (an unknown command: its span fails). Prints one line per connection,
//! `conn <i>`, then the layer's counters as JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, instrument, warn};
use tracing_subscriber::prelude::*;

type Db = Arc<Mutex<HashMap<String, String>>>;

#[derive(Debug)]
struct UnknownCommand(String);

impl std::fmt::Display for UnknownCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown command {:?}", self.0)
    }
}

/// Applies one command.
#[instrument(skip(db), err)]
async fn apply(db: &Db, cmd: String) -> Result<String, UnknownCommand> {
    let parts: Vec<&str> = cmd.split_whitespace().collect();
    let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
    match parts.as_slice() {
        ["SET", k, v] => {
            db.insert((*k).to_owned(), (*v).to_owned());
            info!(key = *k, "stored");
            Ok("OK".into())
        }
        ["GET", k] => Ok(db.get(*k).cloned().unwrap_or_else(|| "(nil)".into())),
        _ => Err(UnknownCommand(cmd.clone())),
    }
}

/// Serves one connection: a command per line, an answer per line.
#[instrument(skip(db, stream), fields(peer = %stream.peer_addr().map(|a| a.to_string()).unwrap_or_default()))]
async fn handle(db: Db, stream: TcpStream) {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match apply(&db, line).await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "refused a command");
                format!("ERR {e}")
            }
        };
        if wr
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
}

#[tokio::main]
async fn main() {
    let layer = logbook_layer::layer();
    let counters = layer.handle();
    let guard = layer.flush_guard();
    tracing_subscriber::registry().with(layer).init();

    let connections: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: logbook-e2e-kv CONNECTIONS");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let db: Db = Arc::default();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            // Spawned: the handler's span is a root, as in mini-redis.
            tokio::spawn(handle(Arc::clone(&db), stream));
        }
    });

    for i in 0..connections {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (rd, mut wr) = stream.into_split();
        let mut lines = BufReader::new(rd).lines();
        let mut commands = vec![format!("SET k{i} v{i}"), format!("GET k{i}")];
        if i + 1 == connections {
            commands.push(format!("INCR k{i}"));
        }
        for c in commands {
            wr.write_all(format!("{c}\n").as_bytes())
                .await
                .expect("send");
            lines.next_line().await.expect("answer").expect("a line");
        }
        drop(wr);
        // The server sees the end of the stream and its handler's span ends.
        let _ = lines.next_line().await;
        println!("conn {i}");
    }
    server.abort();
    let report = guard.flush();
    println!(
        "{}",
        serde_json::json!({
            "emitted": 0,
            "delivered": report.delivered,
            "dropped": report.dropped,
            "rejected": report.rejected,
            "undelivered": report.undelivered,
            "resent": counters.stats().resent,
        })
    );
}
