//! Client-side throughput over loopback TCP: one client multicasts `N` 1 KB messages as fast as it
//! can to a sink that speaks the handshake and then decodes every frame (no group layer, no
//! ring), and the wire codec alone (encode and decode in memory). It measures the client library
//! and the codec, not sgc end to end.
//!
//! `cargo run --profile test -p sgc-client --example loopback_speed [N]`

use std::time::Instant;

use sgc_client::{Client, Endpoint};
use sgc_model::groups::{ClientService, GroupName, PrivateName, Target};
use sgc_wire::{
    Accept, Frame, FrameDecoder, PROTOCOL_VERSION, ToClient, ToClientRef, ToDaemon, encode_data, encode_send,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: usize = 1024;

fn codec(n: usize) {
    // Steady state: 1,000 frames per buffer, the buffers reused (as the client and daemon do).
    const CHUNK: usize = 1000;
    let to = [Target::Group(GroupName::new("bench").unwrap())];
    let body = vec![0u8; BODY];
    let mut buf = Vec::with_capacity(CHUNK * (BODY + 32));
    let mut dec = FrameDecoder::<ToDaemon>::new();
    let (mut enc, mut dect, mut got) = (std::time::Duration::ZERO, std::time::Duration::ZERO, 0);
    for _ in 0..n / CHUNK {
        buf.clear();
        let t = Instant::now();
        for i in 0..CHUNK {
            encode_send(&mut buf, &to, ClientService::Agreed, false, i as i16, &body).unwrap();
        }
        enc += t.elapsed();
        let t = Instant::now();
        dec.feed(&buf);
        while let Some(_f) = dec.next_frame().unwrap() {
            got += 1;
        }
        dect += t.elapsed();
    }
    assert_eq!(got, n / CHUNK * CHUNK);
    println!(
        "codec: SEND encode {:.2} M frames/s, decode {:.2} M frames/s ({} B bodies)",
        got as f64 / enc.as_secs_f64() / 1e6,
        got as f64 / dect.as_secs_f64() / 1e6,
        BODY
    );
    // DATA as a client receives it: owned decode vs zero-copy.
    let sender = PrivateName::new(1, "u", "d").unwrap();
    buf.clear();
    for i in 0..CHUNK {
        encode_data(&mut buf, &sender, &to, ClientService::Agreed, i as i16, &body).unwrap();
    }
    let mut owned = FrameDecoder::<ToClient>::new();
    let mut borrowed = FrameDecoder::<ToClient>::new();
    let (mut to_owned, mut to_ref, mut sum) = (std::time::Duration::ZERO, std::time::Duration::ZERO, 0usize);
    for _ in 0..n / CHUNK {
        let t = Instant::now();
        owned.feed(&buf);
        while let Some(_f) = owned.next_frame().unwrap() {}
        to_owned += t.elapsed();
        let t = Instant::now();
        borrowed.feed(&buf);
        while let Some(len) = borrowed
            .next_frame_ref(|f| match f {
                ToClientRef::Data(d) => d.body.len(),
                ToClientRef::Owned(_) => 0,
            })
            .unwrap()
        {
            sum += len;
        }
        to_ref += t.elapsed();
    }
    assert_eq!(sum, got * BODY);
    println!(
        "codec: DATA decode owned {:.2} M frames/s, zero-copy {:.2} M frames/s",
        got as f64 / to_owned.as_secs_f64() / 1e6,
        got as f64 / to_ref.as_secs_f64() / 1e6,
    );
}

async fn sink(l: tokio::net::TcpListener, n: usize) -> (usize, u64) {
    let (mut s, _) = l.accept().await.unwrap();
    let mut dec = FrameDecoder::<ToDaemon>::new();
    let mut frames = 0;
    let mut reads = 0u64;
    while frames < n + 1 {
        while let Some(f) = dec.next_frame().unwrap() {
            if let ToDaemon::Hello(_) = f {
                let mut out = Vec::new();
                ToClient::Accept(Accept {
                    version: PROTOCOL_VERSION,
                    name: PrivateName::new(1, "u", "sink").unwrap(),
                })
                .encode(&mut out)
                .unwrap();
                s.write_all(&out).await.unwrap();
            }
            frames += 1;
        }
        if frames > n {
            break;
        }
        dec.reserve_for_next(256 * 1024);
        if s.read_buf(dec.buffer_mut()).await.unwrap() == 0 {
            break;
        }
        reads += 1;
    }
    (frames - 1, reads)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500_000);
    codec(n);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ep = Endpoint::Tcp(l.local_addr().unwrap());
    let sink = tokio::spawn(sink(l, n));
    let c = Client::connect(&ep, None, false).await.unwrap();
    let to = [Target::Group(GroupName::new("bench").unwrap())];
    let body = vec![0u8; BODY];
    let t = Instant::now();
    for i in 0..n {
        c.multicast(&to, ClientService::Agreed, i as i16, &body)
            .await
            .unwrap();
    }
    c.flush().await.unwrap();
    let (got, reads) = sink.await.unwrap();
    let dt = t.elapsed();
    println!(
        "loopback: {} msgs of {} B in {:.2?}: {:.0} msgs/s, {:.0} MB/s; client writes {}, sink reads {}",
        got,
        BODY,
        dt,
        got as f64 / dt.as_secs_f64(),
        (got * BODY) as f64 / dt.as_secs_f64() / 1e6,
        c.write_batches(),
        reads
    );
}
