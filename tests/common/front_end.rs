//! Front ends that stand between a client and the emulator the way a
//! harsh one of the real service might: the worst outcomes of the race
//! between a client still sending and a server that has already refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy to `upstream` that, where the upstream answers a 413, resets the
/// client's connection instead of passing the answer on: what a client
/// sees when the front end's reset overtakes its early refusal.
pub struct ResettingFrontEnd {
    pub base_url: String,
}

impl ResettingFrontEnd {
    pub async fn start(upstream: SocketAddr) -> ResettingFrontEnd {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream));
            }
        });
        ResettingFrontEnd { base_url }
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_server) = server.into_split();
    let (mut client_read, mut client_write) = client.into_split();
    let upward = tokio::io::copy(&mut client_read, &mut to_server);
    let downward = async {
        const REFUSAL: &[u8] = b"HTTP/1.1 413 ";
        let mut buf = vec![0u8; 64 * 1024];
        // The end of what went before, should a status line straddle two reads.
        let mut tail = Vec::new();
        loop {
            let n = from_client.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            let mut seen = std::mem::take(&mut tail);
            seen.extend_from_slice(&buf[..n]);
            let carried = seen.len() - n;
            if let Some(at) = find(&seen, REFUSAL) {
                // Whatever answers went before pass; the 413 never does.
                let _ = client_write.write_all(&seen[carried.min(at)..at]).await;
                return;
            }
            if client_write.write_all(&seen[carried..]).await.is_err() {
                return;
            }
            tail = seen[seen.len().saturating_sub(REFUSAL.len() - 1)..].to_vec();
        }
    };
    let refused = tokio::select! {
        _ = upward => false,
        () = downward => true,
    };
    let client = client_read.reunite(client_write).unwrap();
    if refused {
        // Zero linger never blocks: the close sends a reset at once.
        #[allow(deprecated)]
        let _ = client.set_linger(Some(Duration::ZERO));
    }
}

/// A server that answers every request, once it has read the whole of
/// it, with a 413 whose body is cut off: the status arrives, its words do not.
pub struct CutRefusal {
    pub base_url: String,
    /// Requests read so far.
    pub requests: Arc<AtomicUsize>,
}

impl CutRefusal {
    pub async fn start() -> CutRefusal {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    if read_request(&mut conn).await.is_some() {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let _ = conn
                            .write_all(
                                b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n\
                                  Content-Length: 200\r\n\r\n{\"statusCode\":413,\"mess",
                            )
                            .await;
                    }
                });
            }
        });
        CutRefusal { base_url, requests }
    }
}

/// Reads one request whole (its head, and the body its `Content-Length` says).
async fn read_request(conn: &mut TcpStream) -> Option<()> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        let n = conn.read(&mut buf).await.ok().filter(|&n| n > 0)?;
        seen.extend_from_slice(&buf[..n]);
        if let Some(at) = find(&seen, b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = seen.len() - head_end;
    while body < length {
        let n = conn.read(&mut buf).await.ok().filter(|&n| n > 0)?;
        body += n;
    }
    Some(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
