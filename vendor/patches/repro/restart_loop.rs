//! Reproduction harness: N "sessions" against a PRIVATE RabbitMQ node
//! (lapinrepro@localhost, 127.0.0.1:5790). Each session connects, sets up a
//! confirm-mode publisher + an acking consumer, and watches for lapin to
//! report the connection's loss (events listener Error, consumer stream end,
//! status not connected, publish/confirm failure). The orchestrator stops and
//! restarts the broker app in a loop and counts sessions whose loss lapin
//! never reports within a deadline (and sessions that look up but fail a
//! round-trip probe).
//!
//! Usage: repro <cycles> [stop_app|stop] [sessions]
use futures::StreamExt;
use lapin::{
    BasicProperties, Connection, ConnectionProperties, Event,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use std::{
    fs::File,
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::watch;

const URL: &str = "amqp://guest:guest@127.0.0.1:5790/%2f?heartbeat=10";
const NODE: &str = "lapinrepro@localhost";
const REPORT_DEADLINE: Duration = Duration::from_secs(10);

// ---------- per-cycle trace log file ----------
static LOG: Mutex<Option<File>> = Mutex::new(None);
struct LogWriter;
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = LOG.lock().unwrap().as_mut() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
fn set_log(path: &str) {
    *LOG.lock().unwrap() = Some(File::create(path).unwrap());
}

static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
fn ts() -> f64 {
    T0.get().unwrap().elapsed().as_secs_f64()
}
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!("[{:9.3}] {}", ts(), format!($($arg)*));
        println!("{line}");
        tracing::warn!(target: "repro", "{}", line);
    }};
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Connecting,
    Up { generation: u64 },
    Reported { generation: u64, how: String, at: f64 },
}

struct Session {
    id: usize,
    phase: watch::Sender<Phase>,
    generation: AtomicU64,
    conn: Mutex<Option<(lapin::ConnectionStatus, lapin::Channel)>>,
    pub_status: Mutex<Option<lapin::ConnectionStatus>>,
    step: Mutex<&'static str>,
    note: Arc<Mutex<Vec<String>>>,
    hand: Arc<Mutex<&'static str>>,
}
static TIMEOUT_CYCLES: Mutex<Vec<f64>> = Mutex::new(Vec::new());

fn count_io_threads() -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for e in rd.flatten() {
            if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
                if c.trim() == "lapin-io-loop" {
                    n += 1;
                }
            }
        }
    }
    n
}

/// Sockets of this process connected to :5790 (ESTABLISHED or CLOSE_WAIT etc.)
fn sockets_to_broker() -> Vec<String> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for e in rd.flatten() {
            if let Ok(l) = std::fs::read_link(e.path()) {
                let l = l.to_string_lossy().to_string();
                if let Some(i) = l.strip_prefix("socket:[") {
                    inodes.insert(i.trim_end_matches(']').to_string());
                }
            }
        }
    }
    let mut out = vec![];
    if let Ok(t) = std::fs::read_to_string("/proc/net/tcp") {
        for line in t.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[2].ends_with(":169E") && inodes.contains(f[9]) {
                let lport = u16::from_str_radix(f[1].split(':').nth(1).unwrap(), 16).unwrap();
                out.push(format!("lport={lport} st={}", f[3]));
            }
        }
    }
    out
}

async fn session_loop(s: Arc<Session>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        s.phase.send_replace(Phase::Connecting);
        let r = tokio::time::timeout(Duration::from_secs(15), setup(&s)).await;
        let (conn, channel, consumer, events, pconn, pchannel, pevents) = match r {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::info!(target: "repro", session = s.id, "setup failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(_) => {
                say!("session {} setup TIMED OUT (15s) at step {:?}; io threads {}; sockets {:?}", s.id, *s.step.lock().unwrap(), count_io_threads(), sockets_to_broker());
                TIMEOUT_CYCLES.lock().unwrap().push(ts());
                gdb_dump(&format!("timeout-{:.0}-s{}", ts(), s.id));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let generation = s.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *s.conn.lock().unwrap() = Some((conn.status().clone(), channel.clone()));
        *s.pub_status.lock().unwrap() = Some(pconn.status().clone());
        s.phase.send_replace(Phase::Up { generation });
        let how = watch_until_reported(&s, &conn, &channel, consumer, events, &pconn, &pchannel, pevents).await;
        let at = ts();
        tracing::warn!(target: "repro", session = s.id, "reported: {how}");
        s.phase.send_replace(Phase::Reported { generation, how, at });
        *s.conn.lock().unwrap() = None;
        *s.pub_status.lock().unwrap() = None;
        drop(channel);
        drop(conn);
        drop(pchannel);
        drop(pconn);
        tokio::time::sleep(backoff).await;
    }
}

type Events = std::pin::Pin<Box<dyn futures::Stream<Item = Event> + Send + 'static>>;

async fn setup(
    s: &Session,
) -> lapin::Result<(Connection, lapin::Channel, lapin::Consumer, Events, Connection, lapin::Channel, Events)> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("repro-{} consume", s.id).into());
    *s.step.lock().unwrap() = "connect consume";
    let conn = Connection::connect(URL, props).await?;
    let events: Events = Box::pin(conn.events_listener());
    // topology on a temporary channel, closed afterwards (as the project does)
    *s.step.lock().unwrap() = "create tmp channel";
    let tmp = conn.create_channel().await?;
    *s.step.lock().unwrap() = "declare q";
    tmp.queue_declare(
        format!("repro.q{}", s.id).into(),
        QueueDeclareOptions { durable: false, ..Default::default() },
        FieldTable::default(),
    )
    .await?;
    tmp.queue_declare("repro.sink".into(), QueueDeclareOptions { durable: false, ..Default::default() }, FieldTable::default()).await?;
    *s.step.lock().unwrap() = "close tmp";
    let _ = tmp.close(200, "declared".into()).await;
    let pprops = ConnectionProperties::default()
        .with_connection_name(format!("repro-{} publish", s.id).into());
    *s.step.lock().unwrap() = "connect publish";
    let pconn = Connection::connect(URL, pprops).await?;
    let pevents: Events = Box::pin(pconn.events_listener());
    *s.step.lock().unwrap() = "create pchannel";
    let pchannel = pconn.create_channel().await?;
    *s.step.lock().unwrap() = "confirm_select";
    pchannel.confirm_select(ConfirmSelectOptions::default()).await?;
    *s.step.lock().unwrap() = "create channel";
    let channel = conn.create_channel().await?;
    *s.step.lock().unwrap() = "basic_qos";
    channel.basic_qos(1, BasicQosOptions::default()).await?;
    *s.step.lock().unwrap() = "basic_consume";
    let consumer = channel
        .basic_consume(
            format!("repro.q{}", s.id).into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((conn, channel, consumer, events, pconn, pchannel, pevents))
}

#[allow(clippy::too_many_arguments)]
async fn watch_until_reported(
    s: &Session,
    conn: &Connection,
    channel: &lapin::Channel,
    mut consumer: lapin::Consumer,
    mut events: Events,
    pconn: &Connection,
    pchannel: &lapin::Channel,
    mut pevents: Events,
) -> String {
    // OLD_SESSION=1: like the project's session before its workaround: it ends only when the
    // consumer stream ends/errors or the delivery in hand fails; events and status are only
    // recorded (diagnosis), and the consumer stream is not polled while a delivery is in hand.
    let old = std::env::var("OLD_SESSION").is_ok();
    s.note.lock().unwrap().clear();
    let note = |m: String| { let mut n = s.note.lock().unwrap(); if n.len() < 6 { n.push(format!("[{:.3}] {m}", ts())); } };
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let mut in_hand: futures::stream::FuturesUnordered<std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>> = futures::stream::FuturesUnordered::new();
    let mut events_done = false;
    let mut pevents_done = false;
    loop {
        tokio::select! {
            biased;
            Some(r) = in_hand.next(), if !in_hand.is_empty() => {
                *s.hand.lock().unwrap() = "";
                if let Err(e) = r { return e; }
            }
            ev = events.next(), if !events_done => match ev {
                Some(Event::Error(e)) => { if old { note(format!("consume conn event Error({e})")); events_done = true; } else { return format!("consume conn event Error({e})"); } }
                Some(_) => {}
                None => { if old { events_done = true; } else { return "events stream ended".into(); } }
            },
            ev = pevents.next(), if !pevents_done => match ev {
                Some(Event::Error(e)) => { if old { note(format!("publish conn event Error({e})")); pevents_done = true; } else { return format!("publish conn event Error({e})"); } }
                Some(_) => {}
                None => { if old { pevents_done = true; } else { return "pevents stream ended".into(); } }
            },
            d = consumer.next(), if in_hand.is_empty() => match d {
                Some(Ok(d)) => {
                    let pchannel = pchannel.clone();
                    let hand = s.hand.clone();
                    in_hand.push(Box::pin(async move {
                        // reply on the publishing connection, wait for the confirm, then ack
                        *hand.lock().unwrap() = "reply basic_publish";
                        let pc = pchannel.basic_publish("".into(), "repro.sink".into(), BasicPublishOptions::default(), &d.data, BasicProperties::default()).await.map_err(|e| format!("reply publish error({e})"))?;
                        *hand.lock().unwrap() = "reply confirm";
                        pc.await.map_err(|e| format!("reply confirm error({e})"))?;
                        *hand.lock().unwrap() = "ack";
                        d.ack(BasicAckOptions::default()).await.map_err(|e| format!("ack error({e})"))?;
                        Ok(())
                    }));
                }
                Some(Err(e)) => return format!("consumer error({e})"),
                None => return "consumer stream ended".into(),
            },
            _ = poll.tick() => {
                let bad = if !conn.status().connected() {
                    Some(format!("consume conn status {:?}", conn.status()))
                } else if !channel.status().connected() {
                    Some(format!("consume channel status {:?}", channel.status()))
                } else if !pconn.status().connected() {
                    Some(format!("publish conn status {:?}", pconn.status()))
                } else { None };
                if let Some(b) = bad {
                    if old { note(b); } else { return b; }
                }
            }
        }
    }
}

/// Keeps every session queue fed: one producer connection, confirms, 64 in flight.
async fn producer_loop(nsessions: usize) {
    loop {
        let r: lapin::Result<()> = async {
            let conn = Connection::connect(URL, ConnectionProperties::default().with_connection_name("repro producer".into())).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            for i in 0..nsessions {
                ch.queue_declare(format!("repro.q{i}").into(), QueueDeclareOptions::default(), FieldTable::default()).await?;
            }
            let mut inflight = futures::stream::FuturesUnordered::new();
            let mut n: u64 = 0;
            loop {
                while inflight.len() < 64 {
                    n += 1;
                    let q = format!("repro.q{}", n as usize % nsessions);
                    let pc = ch.basic_publish("".into(), q.into(), BasicPublishOptions::default(), format!("msg {n}").as_bytes(), BasicProperties::default()).await?;
                    inflight.push(pc);
                }
                match tokio::time::timeout(Duration::from_secs(5), inflight.next()).await {
                    Ok(Some(r)) => { r?; }
                    Ok(None) => {}
                    Err(_) => return Err(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Error).into()),
                }
                // throttle: keep queues short
                if n % 64 == 0 { tokio::time::sleep(Duration::from_millis(20)).await; }
            }
        }.await;
        tracing::info!(target: "repro", "producer: {:?}", r.err());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn gdb_dump(tag: &str) {
    // gdb writes to a file: a pipe read by this (stopped) process would deadlock.
    let pid = std::process::id();
    let path = format!("/tmp/lapin-research/logs/gdb-{tag}.txt");
    let f = std::fs::File::create(&path).unwrap();
    let st = std::process::Command::new("timeout")
        .args(["60", "gdb", "-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt"])
        .stdout(f)
        .stderr(std::process::Stdio::null())
        .stdin(std::process::Stdio::null())
        .status();
    say!("gdb dump written to {path}: {st:?}");
}

async fn rabbitmqctl(args: &[&str]) -> bool {
    let d = "/tmp/lapin-research/node";
    let out = tokio::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
        .env("HOME", d)
        .arg("-n")
        .arg(NODE)
        .args(args)
        .output()
        .await
        .unwrap();
    if !out.status.success() {
        if args[0] != "await_startup" { say!("rabbitmqctl {:?} failed: {}", args, String::from_utf8_lossy(&out.stderr)); }
    }
    out.status.success()
}

async fn get_beam_pid() -> Option<String> {
    let out = tokio::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
        .env("HOME", "/tmp/lapin-research/node")
        .args(["-n", NODE, "eval", "os:getpid()."])
        .output()
        .await
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_string();
    if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() { Some(s) } else { None }
}

async fn port_open() -> bool {
    tokio::net::TcpStream::connect("127.0.0.1:5790").await.is_ok()
}

fn main() {
    let rt = match std::env::var("REPRO_RT").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        _ => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
    };
    rt.block_on(real_main());
}

async fn real_main() {
    T0.set(Instant::now()).unwrap();
    let args: Vec<String> = std::env::args().collect();
    let cycles: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mode = args.get(2).cloned().unwrap_or_else(|| "stop_app".into());
    let nsessions: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let logdir = "/tmp/lapin-research/logs";
    std::fs::create_dir_all(logdir).unwrap();
    set_log(&format!("{logdir}/cycle-000.log"));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "lapin=trace,repro=info".into()),
        )
        .with_thread_ids(true)
        .with_thread_names(true)
        .with_ansi(false)
        .with_writer(|| LogWriter)
        .init();

    let sessions: Vec<Arc<Session>> = (0..nsessions)
        .map(|id| {
            Arc::new(Session {
                id,
                phase: watch::channel(Phase::Connecting).0,
                generation: AtomicU64::new(0),
                conn: Mutex::new(None),
                pub_status: Mutex::new(None),
                step: Mutex::new(""),
                note: Arc::new(Mutex::new(Vec::new())),
                hand: Arc::new(Mutex::new("")),
            })
        })
        .collect();
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = sessions.iter().map(|s| tokio::spawn(session_loop(s.clone()))).collect();
    tokio::spawn(producer_loop(nsessions));
    let silent = AtomicUsize::new(0);
    let mut silent_cycles = vec![];
    for cycle in 1..=cycles {
        set_log(&format!("{logdir}/cycle-{cycle:03}.log"));
        if mode == "flap" {
            // stop at a random point shortly after the broker came back: sessions may be
            // connecting, mid-handshake or setting up.
            let delay = Duration::from_millis((cycle as u64 * 7919) % 1500);
            tokio::time::sleep(delay).await;
            let ups: Vec<String> = sessions.iter().map(|s| format!("{:?}", s.phase.borrow().clone())).collect();
            say!("cycle {cycle}: flap stop_app {delay:?} after start; phases {ups:?}; step {:?}", sessions.iter().map(|s| *s.step.lock().unwrap()).collect::<Vec<_>>());
            rabbitmqctl(&["stop_app"]).await;
            tokio::time::sleep(REPORT_DEADLINE).await;
            for s in &sessions {
                if let Phase::Up { generation } = *s.phase.borrow() {
                    let st = s.conn.lock().unwrap().as_ref().map(|(c, ch)| format!("consume {:?} / channel {:?} / publish {:?}", c, ch.status(), s.pub_status.lock().unwrap()));
                    say!("cycle {cycle}: SILENT session {} (gen {generation}) still Up {:?}s after stop_app: {:?}; io threads {}; sockets {:?}", s.id, REPORT_DEADLINE, st, count_io_threads(), sockets_to_broker());
                    silent.fetch_add(1, Ordering::SeqCst);
                    silent_cycles.push(cycle);
                }
            }
            if silent_cycles.contains(&cycle) { gdb_dump(&format!("flap-cycle{cycle:03}")); }
            rabbitmqctl(&["start_app"]).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !port_open().await && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            say!("cycle {cycle}: broker back up");
            let had_timeout = !TIMEOUT_CYCLES.lock().unwrap().is_empty();
            if had_timeout { silent_cycles.push(cycle + 10000); TIMEOUT_CYCLES.lock().unwrap().clear(); }
            if cycle > 1 && !silent_cycles.contains(&cycle) && !silent_cycles.contains(&(cycle - 1)) && !silent_cycles.contains(&(cycle + 10000)) && !silent_cycles.contains(&(cycle - 1 + 10000)) {
                let _ = std::fs::remove_file(format!("{logdir}/cycle-{:03}.log", cycle - 1));
            }
            continue;
        }
        // 1. wait until all sessions are up
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all_up = sessions
                .iter()
                .all(|s| matches!(*s.phase.borrow(), Phase::Up { .. }));
            if all_up || Instant::now() > deadline {
                if !all_up {
                    say!("cycle {cycle}: NOT all sessions up after 30s: {:?}",
                        sessions.iter().map(|s| s.phase.borrow().clone()).collect::<Vec<_>>());
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // let traffic flow a bit, random-ish
        tokio::time::sleep(Duration::from_millis(300 + (cycle as u64 * 137) % 700)).await;
        // 1b. probe every Up session: basic_qos round trip within 3 s
        for s in &sessions {
            let ch = s.conn.lock().unwrap().as_ref().map(|(_, ch)| ch.clone());
            if let Some(ch) = ch {
                let r = tokio::time::timeout(Duration::from_secs(3), ch.basic_qos(10, BasicQosOptions::default())).await;
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => say!("cycle {cycle}: session {} probe error {e}", s.id),
                    Err(_) => {
                        say!("cycle {cycle}: session {} PROBE TIMEOUT while phase {:?} (io threads {}, sockets {:?})", s.id, s.phase.borrow().clone(), count_io_threads(), sockets_to_broker());
                        silent.fetch_add(1, Ordering::SeqCst);
                        silent_cycles.push(cycle);
                        gdb_dump(&format!("probe-cycle{cycle:03}-s{}", s.id));
                    }
                }
            }
        }
        let gens: Vec<u64> = sessions.iter().map(|s| match *s.phase.borrow() { Phase::Up { generation } => generation, _ => 0 }).collect();
        say!("cycle {cycle}: sessions up {:?}, io threads {}, sockets {}", gens, count_io_threads(), sockets_to_broker().len());
        // 2. stop
        let beam_pid = if mode == "kill" { get_beam_pid().await } else { None };
        let t_stop = ts();
        match mode.as_str() {
            "stop" => {
                rabbitmqctl(&["stop"]).await;
            }
            "kill" => {
                let pid = beam_pid.clone().expect("beam pid");
                say!("cycle {cycle}: SIGKILL beam pid {pid}");
                let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
                let deadline = Instant::now() + Duration::from_secs(20);
                while port_open().await && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            _ => {
                rabbitmqctl(&["stop_app"]).await;
            }
        }
        let t_stopped = ts();
        say!("cycle {cycle}: {mode} took {:.3}s", t_stopped - t_stop);
        // 3. wait for every session that was Up to report
        let deadline = Instant::now() + REPORT_DEADLINE;
        loop {
            let pending: Vec<usize> = sessions
                .iter()
                .zip(&gens)
                .filter(|(s, g)| matches!(*s.phase.borrow(), Phase::Up { generation } if generation == **g && **g != 0))
                .map(|(s, _)| s.id)
                .collect();
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for id in &pending {
                    let s = &sessions[*id];
                    let st = s.conn.lock().unwrap().as_ref().map(|(c, ch)| format!("consume {:?} / channel {:?} / publish {:?}", c, ch.status(), s.pub_status.lock().unwrap()));
                    say!("cycle {cycle}: SILENT session {id}: no report {:.1}s after {mode}; lapin status {:?}; in hand {:?}; notes {:?}; io threads {}; sockets {:?}", REPORT_DEADLINE.as_secs_f64(), st, *s.hand.lock().unwrap(), s.note.lock().unwrap(), count_io_threads(), sockets_to_broker());
                }
                silent.fetch_add(pending.len(), Ordering::SeqCst);
                silent_cycles.push(cycle);
                if std::env::var("NO_GDB").is_err() { gdb_dump(&format!("cycle{cycle:03}")); }
                // abandon the stuck sessions and start fresh ones, so every cycle is a new sample
                for id in &pending {
                    tasks[*id].abort();
                    sessions[*id].phase.send_replace(Phase::Connecting);
                    tasks[*id] = tokio::spawn(session_loop(sessions[*id].clone()));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (s, g) in sessions.iter().zip(&gens) {
            if let Phase::Reported { generation, how, at } = &*s.phase.borrow() {
                if generation == g {
                    say!("cycle {cycle}: session {} reported after {:+.3}s (vs stop start): {how}", s.id, at - t_stop);
                }
            }
        }
        // 4. start again
        if mode == "stop" || mode == "kill" {
            let d = "/tmp/lapin-research/node";
            let st = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!(". {d}/env.sh; /usr/lib/rabbitmq/bin/rabbitmq-server -detached"))
                .status()
                .unwrap();
            assert!(st.success());
            let deadline = Instant::now() + Duration::from_secs(60);
            while !rabbitmqctl(&["await_startup"]).await {
                if Instant::now() > deadline { panic!("node did not come back"); }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        } else {
            rabbitmqctl(&["start_app"]).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !port_open().await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        say!("cycle {cycle}: broker back up");
        let had_timeout = !TIMEOUT_CYCLES.lock().unwrap().is_empty();
        if had_timeout { silent_cycles.push(cycle + 10000); TIMEOUT_CYCLES.lock().unwrap().clear(); }
        if cycle > 1 && !silent_cycles.contains(&cycle) && !silent_cycles.contains(&(cycle - 1)) && !silent_cycles.contains(&(cycle + 10000)) && !silent_cycles.contains(&(cycle - 1 + 10000)) {
            let _ = std::fs::remove_file(format!("{logdir}/cycle-{:03}.log", cycle - 1));
        }
    }
    // final check: all up and probe
    tokio::time::sleep(Duration::from_secs(5)).await;
    for s in &sessions {
        let ch = s.conn.lock().unwrap().as_ref().map(|(_, ch)| ch.clone());
        match ch {
            Some(ch) => {
                let r = tokio::time::timeout(Duration::from_secs(3), ch.basic_qos(10, BasicQosOptions::default())).await;
                if !matches!(r, Ok(Ok(()))) {
                    say!("final: session {} probe failed {:?}", s.id, r.map(|r| r.map_err(|e| e.to_string())));
                    silent.fetch_add(1, Ordering::SeqCst);
                }
            }
            None => say!("final: session {} not up: {:?}", s.id, s.phase.borrow().clone()),
        }
    }
    say!("DONE: cycles {cycles}, mode {mode}, sessions {nsessions}, silent {} in cycles {:?}", silent.load(Ordering::SeqCst), silent_cycles);
    std::process::exit(0);
}
