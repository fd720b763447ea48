//! A TCP proxy that can cut its upstream off or answer for it, to put a real
//! KMS emulator behind an outage or throttling on demand.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Accept and close at once, as a dead endpoint behind a load balancer does.
    Unreachable,
    /// Answer every request as AWS does when a caller exceeds its rate.
    Throttling,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
}

const THROTTLED_BODY: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (fault, watcher) = watch::channel(Fault::None);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut watcher = watcher.clone();
                let fault = *watcher.borrow_and_update();
                tokio::spawn(async move {
                    match fault {
                        Fault::Unreachable => drop(inbound),
                        Fault::Throttling => throttle(inbound).await,
                        Fault::None => {
                            let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                            let mut inbound = inbound;
                            // A fault set later cuts connections already open.
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = watcher.changed() => {}
                            }
                        }
                    }
                });
            }
        });
        Self { addr, fault }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

/// Reads one HTTP request and answers 400 ThrottlingException.
async fn throttle(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let Ok(n) = stream.read(&mut buffer).await else { return };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: ThrottlingException\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{THROTTLED_BODY}",
        THROTTLED_BODY.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
