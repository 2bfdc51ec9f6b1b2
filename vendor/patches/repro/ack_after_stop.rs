//! Deterministic reproduction of "an RPC command queued after the IO loop stopped hangs for
//! ever". Ordering forced with public API only:
//!  1. a connection through a local TCP proxy, a delivery in hand (basic_get, not acked);
//!  2. the only tokio worker (which runs lapin's InternalRPC task) is kept busy;
//!  3. the proxy resets the client socket (RST);
//!  4. a basic_publish (polled off the runtime) makes the IO loop write: it gets the error,
//!     queues SetConnectionError, exits and queues the `None` stop marker;
//!  5. the application acks the delivery (and calls create_channel): lapin has not processed
//!     the error yet, so the acker is not poisoned and the state is still Connected: the
//!     commands are queued behind `None`;
//!  6. the worker is released: InternalRPC processes SetConnectionError, then `None`, and stops.
//! Expected: ack and create_channel fail. Observed with lapin 4.12.3: both hang for ever.
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::Duration,
};

fn io_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .map(|c| c.trim() == "lapin-io-loop")
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// One-connection proxy to the broker; returns its port and the client-side socket.
fn proxy(upstream: &'static str) -> (u16, Arc<Mutex<Option<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client_side = Arc::new(Mutex::new(None));
    let cs = client_side.clone();
    thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(upstream).unwrap();
        *cs.lock().unwrap() = Some(client.try_clone().unwrap());
        let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || { let _ = std::io::copy(&mut c1, &mut s1); });
        let (mut s2, mut c2) = (server, client);
        let mut buf = [0u8; 65536];
        loop {
            match s2.read(&mut buf) { Ok(0) | Err(_) => break, Ok(n) => if c2.write_all(&buf[..n]).is_err() { break } }
        }
    });
    (port, client_side)
}

fn reset(sock: &TcpStream) {
    let s = socket2::SockRef::from(sock);
    s.set_linger(Some(Duration::ZERO)).unwrap();
    s.shutdown(std::net::Shutdown::Both).ok();
}

fn main() {
    let upstream = "127.0.0.1:5790";
    let (port, client_side) = proxy(upstream);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f?heartbeat=0");
    let (conn, channel, delivery) = rt.block_on(async {
        let conn = Connection::connect(&url, ConnectionProperties::default()).await.unwrap();
        let channel = conn.create_channel().await.unwrap();
        let q = channel.queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, FieldTable::default()).await.unwrap();
        channel.basic_publish("".into(), q.name().clone(), BasicPublishOptions::default(), b"x", BasicProperties::default()).await.unwrap().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let msg = channel.basic_get(q.name().clone(), BasicGetOptions { no_ack: false }).await.unwrap().expect("a message");
        (conn, channel, msg.delivery)
    });
    println!("connected; a delivery in hand (tag {}); io threads {}", delivery.delivery_tag, io_threads());

    // 2. keep the only worker busy
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    rt.spawn(async move {
        started_tx.send(()).unwrap();
        let _ = busy_rx.recv(); // blocks the worker thread
    });
    started_rx.recv().unwrap();
    // 3. RST the client socket
    reset(client_side.lock().unwrap().as_ref().unwrap());
    thread::sleep(Duration::from_millis(100));
    // 4. make the IO loop write until it hits the error and exits (the first write after the
    //    peer's FIN succeeds and draws a RST; a later one fails)
    for i in 0..20 {
        let ch = channel.clone();
        let publish = thread::spawn(move || {
            futures::executor::block_on(ch.basic_publish("".into(), "nowhere".into(), BasicPublishOptions::default(), b"y", BasicProperties::default())).map(|_| ())
        });
        let r = publish.join().unwrap().map_err(|e| e.to_string());
        thread::sleep(Duration::from_millis(50));
        println!("basic_publish #{i} after the reset: {r:?}; io threads {}", io_threads());
        if io_threads() == 0 { break; }
    }
    println!("io threads now {}; connection state as seen by the app: {:?}", io_threads(), conn.status());
    // 5. ack and create_channel, off the runtime
    let (ack_tx, ack_rx) = mpsc::channel();
    let acker = delivery.acker.clone();
    thread::spawn(move || { let r = futures::executor::block_on(acker.ack(BasicAckOptions::default())); let _ = ack_tx.send(r.map_err(|e| e.to_string())); });
    let conn = Arc::new(conn);
    let (cc_tx, cc_rx) = mpsc::channel();
    let c2 = conn.clone();
    thread::spawn(move || { let r = futures::executor::block_on(c2.create_channel()); let _ = cc_tx.send(r.map(|_| ()).map_err(|e| e.to_string())); });
    thread::sleep(Duration::from_millis(200));
    // 6. release the worker
    busy_tx.send(()).unwrap();
    let ack = ack_rx.recv_timeout(Duration::from_secs(5));
    let cc = cc_rx.recv_timeout(Duration::from_secs(5));
    println!("after releasing the runtime: connection state {:?}", conn.status());
    println!("delivery.ack(): {}", match ack { Ok(r) => format!("returned {r:?}"), Err(_) => "HUNG (no result within 5 s)".into() });
    println!("connection.create_channel(): {}", match cc { Ok(r) => format!("returned {r:?}"), Err(_) => "HUNG (no result within 5 s)".into() });
    std::process::exit(0);
}
