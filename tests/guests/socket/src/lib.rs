//! Adversarial: tries to connect to `input.addr`, to resolve a name, and to
//! bind a UDP socket, and reports each attempt.
use paddock_sdk::{Agent, export_agent};
use serde_json::json;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};

fn attempt<T>(r: std::io::Result<T>) -> serde_json::Value {
    match r {
        Ok(_) => json!({ "ok": true }),
        Err(e) => json!({ "err": e.to_string() }),
    }
}

struct Socket;

impl Agent for Socket {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let addr = v["addr"].as_str().unwrap_or("127.0.0.1:80").to_string();
        Ok(json!({
            "tcp": attempt(TcpStream::connect(addr.as_str())),
            "dns": attempt(("localhost", 80).to_socket_addrs()),
            "udp": attempt(UdpSocket::bind("0.0.0.0:0")),
        })
        .to_string())
    }
}

export_agent!(Socket);
