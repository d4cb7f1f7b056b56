//! A slow link on loopback: a TCP proxy on 127.0.0.1 that holds every chunk of bytes for a fixed
//! time in each direction before passing it on, in the order it came (`DelayProxy`). Put in
//! front of an sshd (or the bastion), it makes every round trip of the SSH protocol cost
//! `2 × one_way`, which is how a benchmark shows how many round trips a connection or a step
//! takes (`tc netem` needs privileges these machines do not give).
//!
//! It delays, it does not throttle: bytes read together travel together, nothing is reordered,
//! dropped or split, and an end of stream (a half close) is passed on after the same delay. Both
//! of its sockets have Nagle's algorithm off, so the proxy adds no waiting of its own. It listens
//! on 127.0.0.1 only and connects only to 127.0.0.1. Everything it started (the listener and
//! every connection's threads and sockets) is closed when the value is dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one direction of a connection carries from its reader to its writer.
enum Chunk {
    /// Bytes read at some moment, to be written at `due`.
    Bytes { due: Instant, bytes: Vec<u8> },
    /// The sender closed its side (or failed): close ours at `due`.
    End { due: Instant },
}

pub struct DelayProxy {
    /// Where clients connect (127.0.0.1).
    pub port: u16,
    /// Where it forwards to (127.0.0.1).
    pub target: u16,
    /// The delay added in each direction.
    pub one_way: Duration,
    stop: Arc<AtomicBool>,
    /// Both sockets of every connection, to close them when the proxy goes.
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listen on a new port of 127.0.0.1 and forward each connection to 127.0.0.1:`target`,
    /// every byte `one_way` late in each direction.
    pub fn start(target: u16, one_way: Duration) -> DelayProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the delay proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (stop, sockets, accepted) = (stop.clone(), sockets.clone(), accepted.clone());
            std::thread::Builder::new()
                .name(format!("delay-{port}"))
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(client) = client else { continue };
                        // The server end; a target that refuses closes the client at once.
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        accepted.fetch_add(1, Ordering::SeqCst);
                        if let Err(e) = splice(client, server, one_way, &sockets) {
                            eprintln!("delay proxy {port} → {target}: {e}");
                        }
                    }
                })
                .expect("start the delay proxy's thread")
        };
        DelayProxy {
            port,
            target,
            one_way,
            stop,
            sockets,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    /// What one round trip through the proxy adds.
    pub fn rtt(&self) -> Duration {
        self.one_way * 2
    }

    /// Connections it has forwarded so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Cut every connection forwarded so far, dropping whatever is still on its way (the link
    /// failed); new connections are forwarded as before.
    pub fn cut(&self) {
        let sockets = match self.sockets.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for s in sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the listener so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let sockets = match self.sockets.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for s in sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Forward both directions of one connection, each through a delay line of its own.
fn splice(
    client: TcpStream,
    server: TcpStream,
    one_way: Duration,
    sockets: &Mutex<Vec<TcpStream>>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    if let Ok(mut s) = sockets.lock() {
        s.push(client.try_clone()?);
        s.push(server.try_clone()?);
    }
    delay_line(client.try_clone()?, server.try_clone()?, one_way)?;
    delay_line(server, client, one_way)?;
    Ok(())
}

/// One direction: a reader stamps each chunk with when it is due, a writer sends it then.
fn delay_line(mut from: TcpStream, mut to: TcpStream, one_way: Duration) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Chunk>();
    std::thread::Builder::new()
        .name("delay-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Chunk::End {
                            due: Instant::now() + one_way,
                        });
                        return;
                    }
                    Ok(n) => {
                        let chunk = Chunk::Bytes {
                            due: Instant::now() + one_way,
                            bytes: buf[..n].to_vec(),
                        };
                        if tx.send(chunk).is_err() {
                            // The writer gave up (its side failed): stop reading as well.
                            let _ = from.shutdown(Shutdown::Read);
                            return;
                        }
                    }
                }
            }
        })?;
    std::thread::Builder::new()
        .name("delay-write".into())
        .spawn(move || {
            let wait = |due: Instant| {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            };
            for chunk in rx {
                match chunk {
                    Chunk::Bytes { due, bytes } => {
                        wait(due);
                        if to.write_all(&bytes).is_err() {
                            let _ = to.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                    Chunk::End { due } => {
                        wait(due);
                        let _ = to.shutdown(Shutdown::Write);
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
