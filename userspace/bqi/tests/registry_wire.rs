//! Host tests of the registry conversation: the messages' JSON, and a file
//! passed with SCM_RIGHTS arriving as the same open file.

use bqi::registry::{recv_with_fd, send_with_fd, Answer, Ask, Refusal};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

#[test]
fn requests_and_answers_round_trip_as_json() {
    let asks = [
        Ask::Raw { dev: "eth0".into(), bqi: 7, peer: 9, buffers: 64 },
        Ask::Udp { dev: "eth0".into(), local: "10.0.0.1:53".parse().unwrap(), remote: None, buffers: 8 },
        Ask::Tcp { dev: "veth1".into(), local: "10.0.0.1:80".parse().unwrap(), remote: Some("10.0.0.2:4000".parse().unwrap()), buffers: 32 },
        Ask::Status,
    ];
    for a in asks {
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Ask>(&text).unwrap(), a, "{text}");
    }
    let refused = Answer::Refused { why: Refusal::InUse, message: "udp port 53 is taken".into() };
    let text = serde_json::to_string(&refused).unwrap();
    assert_eq!(text, r#"{"result":"refused","why":"in_use","message":"udp port 53 is taken"}"#);
    assert!(serde_json::from_str::<Ask>(r#"{"op":"udp","dev":"x"}"#).is_err());
    assert!(serde_json::from_str::<Ask>(r#"{"op":"format_disk"}"#).is_err());
}

#[test]
fn a_passed_file_is_the_same_open_file() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut file = tempfile_in_tmp();
    file.write_all(b"shared").unwrap();
    send_with_fd(a.as_raw_fd(), b"{\"x\":1}\n", Some(file.as_raw_fd())).unwrap();
    let (first, fd) = recv_with_fd(b.as_raw_fd()).unwrap();
    assert_eq!(first, Some(b'{'));
    let mut got = std::fs::File::from(fd.expect("a file came with the message"));
    // Same open file: same offset, same contents.
    got.rewind().unwrap();
    let mut s = String::new();
    got.read_to_string(&mut s).unwrap();
    assert_eq!(s, "shared");
    // The rest of the message follows without a file.
    let (next, none) = recv_with_fd(b.as_raw_fd()).unwrap();
    assert_eq!((next, none.is_none()), (Some(b'"'), true));
    drop(a);
    let mut rest = [0u8; 16];
    let n = (&b).read(&mut rest).unwrap();
    assert_eq!(&rest[..n], b"x\":1}\n");
    assert_eq!(recv_with_fd(b.as_raw_fd()).unwrap().0, None, "end of stream");
}

fn tempfile_in_tmp() -> std::fs::File {
    let path = std::env::temp_dir().join(format!("bqi-registry-test-{}", std::process::id()));
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}
