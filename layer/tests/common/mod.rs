//! A minimal protocol peer on a real Unix socket, for testing the layer alone.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use logbook_proto::wire::{
    decode_frame, encode_frame, read_frame, Ack, Frame, Welcome, PROTOCOL_VERSION,
};
use logbook_proto::{Record, Resource};

/// Accepts connections, answers the handshake and acknowledges every batch.
pub fn peer(path: &Path) -> Arc<Mutex<Vec<Record>>> {
    peer_with(path, 1 << 24, Duration::ZERO)
}

/// A peer announcing `max_frame` and acknowledging each batch after `ack_delay`.
pub fn peer_with(path: &Path, max_frame: u32, ack_delay: Duration) -> Arc<Mutex<Vec<Record>>> {
    let listener = UnixListener::bind(path).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let sink = Arc::clone(&sink);
            thread::spawn(move || serve(stream.unwrap(), &sink, max_frame, ack_delay));
        }
    });
    got
}

fn serve(mut s: UnixStream, sink: &Mutex<Vec<Record>>, max_frame: u32, ack_delay: Duration) {
    let resource = Arc::new(Resource::default());
    let mut buf = Vec::new();
    while read_frame(&mut s, max_frame, &mut buf).unwrap_or(false) {
        let reply = match decode_frame(&buf, &resource).unwrap() {
            Frame::Hello(_) => Frame::Welcome(Welcome {
                version: PROTOCOL_VERSION,
                max_frame_bytes: max_frame,
                server: "peer".into(),
            }),
            Frame::Batch(b) => {
                thread::sleep(ack_delay);
                let n = b.records.len() as u32;
                sink.lock().unwrap().extend(b.records);
                Frame::Ack(Ack {
                    seq: b.seq,
                    stored: n,
                    duplicates: 0,
                })
            }
            _ => continue,
        };
        let mut out = Vec::new();
        encode_frame(&reply, &mut out);
        s.write_all(&out).unwrap();
    }
}
