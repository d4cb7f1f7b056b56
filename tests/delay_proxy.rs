//! The benchmarks' slow link (`support::delay::DelayProxy`) against real TCP servers on
//! loopback: it adds at least its delay in each direction, keeps every byte in order, passes an
//! end of stream on, and closes everything when dropped. Time is only compared with the delay
//! the proxy promises (a floor), and with a generous ceiling that catches a hang.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::delay::DelayProxy;

/// A ceiling that only catches a proxy that hangs or sleeps far too long.
const HANG: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1 that runs `serve` on each connection, in a thread of its own.
fn server(serve: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind the test server");
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || serve(c));
        }
    });
    port
}

fn echo(mut c: TcpStream) {
    c.set_nodelay(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect through the proxy");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s
}

/// The other end closed `s` (end of stream or reset), rather than leaving it open until the
/// read timed out.
fn assert_closed(s: &mut TcpStream, when: &str) {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was still open {when}: {e}"),
        Ok(n) => panic!("the connection delivered {n} bytes {when}"),
    }
}

/// Send `msg` and read back as many bytes; how long it took.
fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let started = Instant::now();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("the echo");
    assert_eq!(back, msg);
    started.elapsed()
}

#[test]
fn a_round_trip_through_the_proxy_costs_at_least_both_delays() {
    let one_way = Duration::from_millis(25);
    let port = server(echo);
    let proxy = DelayProxy::start(port, one_way);
    assert_eq!(proxy.rtt(), Duration::from_millis(50));
    let mut direct = connect(port);
    let mut slow = connect(proxy.port);
    for i in 0..5u8 {
        let fast = round_trip(&mut direct, &[i; 10]);
        let delayed = round_trip(&mut slow, &[i; 10]);
        assert!(
            delayed >= proxy.rtt(),
            "round trip {i} through the proxy took {delayed:?}, less than its {:?}",
            proxy.rtt()
        );
        assert!(
            delayed >= fast + proxy.rtt() / 2,
            "round trip {i}: {delayed:?} through the proxy, {fast:?} direct"
        );
        assert!(delayed < HANG, "round trip {i} took {delayed:?}");
    }
    assert_eq!(proxy.connections(), 1);
}

#[test]
fn each_direction_is_delayed_on_its_own() {
    // The server speaks first: its greeting crosses the proxy once.
    fn greet_then_echo(mut c: TcpStream) {
        c.set_nodelay(true).unwrap();
        c.write_all(b"hello\n").unwrap();
        echo(c)
    }
    let one_way = Duration::from_millis(30);
    let proxy = DelayProxy::start(server(greet_then_echo), one_way);
    let started = Instant::now();
    let mut s = connect(proxy.port);
    let mut greeting = [0u8; 6];
    s.read_exact(&mut greeting).expect("the greeting");
    let first = started.elapsed();
    assert_eq!(&greeting, b"hello\n");
    assert!(first >= one_way, "the greeting came after {first:?}");
    assert!(first < HANG, "the greeting took {first:?}");
    let both = round_trip(&mut s, b"ping");
    assert!(both >= one_way * 2, "a round trip took {both:?}");
}

#[test]
fn bytes_arrive_whole_and_in_order_while_many_chunks_are_in_flight() {
    let proxy = DelayProxy::start(server(echo), Duration::from_millis(20));
    let mut s = connect(proxy.port);
    // 300 chunks of different sizes written back to back, without waiting for the echo: many
    // are held in the delay line at once.
    let sent: Vec<u8> = (0..300u32)
        .flat_map(|i| {
            let len = 1 + (i * 37 % 700) as usize;
            (0..len).map(move |j| (i as usize * 7 + j) as u8)
        })
        .collect();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut at = 0;
            let mut i = 0u32;
            while at < sent.len() {
                let len = (1 + (i * 37 % 700) as usize).min(sent.len() - at);
                w.write_all(&sent[at..at + len]).unwrap();
                at += len;
                i += 1;
            }
        })
    };
    let mut got = vec![0u8; sent.len()];
    s.read_exact(&mut got).expect("everything echoed");
    writer.join().unwrap();
    assert_eq!(got.len(), sent.len());
    let first_difference = got.iter().zip(&sent).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "the bytes came back out of order");
}

#[test]
fn an_end_of_stream_is_passed_on_and_the_answer_still_comes_back() {
    // Read the whole request, then answer and close: the request's end must reach it.
    fn read_all_then_answer(mut c: TcpStream) {
        let mut req = Vec::new();
        c.read_to_end(&mut req).unwrap();
        c.write_all(format!("got {} bytes", req.len()).as_bytes())
            .unwrap();
    }
    let proxy = DelayProxy::start(server(read_all_then_answer), Duration::from_millis(10));
    let mut s = connect(proxy.port);
    s.write_all(&[b'x'; 5000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .expect("the answer, then the end");
    assert_eq!(answer, "got 5000 bytes");
}

#[test]
fn dropping_the_proxy_closes_its_port_and_its_connections() {
    let proxy = DelayProxy::start(server(echo), Duration::from_millis(5));
    let port = proxy.port;
    let mut s = connect(port);
    round_trip(&mut s, b"before");
    drop(proxy);
    assert_closed(&mut s, "after the proxy went");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on the proxy's port {port}"
    );
}

#[test]
fn a_target_that_refuses_closes_the_client_at_once() {
    // A port nothing listens on: bind one, then let it go.
    let closed = {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = DelayProxy::start(closed, Duration::from_millis(5));
    let mut s = connect(proxy.port);
    assert_closed(&mut s, "when its target is down");
    assert_eq!(proxy.connections(), 0);
}
