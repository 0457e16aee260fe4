//! `-p [ip:]host:container[/udp]`: ports published on the node and
//! forwarded to a container on the lab's bridge, as Docker's userland proxy
//! does: a TCP connection per client, or UDP datagrams relayed through a
//! socket per client. Every socket lives in the node's network, never the
//! host's.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::api::types::{HostConfig, PortBinding};
use crate::error::{Error, Result};

/// A UDP client unheard from this long has its relay socket closed.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// UDP clients relayed at once; more and the oldest relays are dropped.
const UDP_CLIENTS: usize = 256;

/// One binding asked for: `80/tcp` of the container on the node's
/// `host_ip:host_port` (port 0: any free one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Docker's key: `80/tcp`, `53/udp`.
    pub key: String,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub udp: bool,
}

/// The bindings of `host` (`-p`), checked.
pub fn requested(host: &HostConfig) -> Result<Vec<Request>> {
    let mut out = Vec::new();
    for (key, bindings) in host.port_bindings.iter().flatten() {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            other => {
                return Err(Error::NotImplemented(format!(
                    "publishing {other} ports is not supported by this engine; publish tcp or udp ports"
                )));
            }
        };
        let container_port: u16 = port
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("invalid container port {port:?}")))?;
        for b in bindings.iter().flatten() {
            let host_ip = match b.host_ip.as_str() {
                "" | "0.0.0.0" | "::" => Ipv4Addr::UNSPECIFIED,
                ip => ip.parse().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "invalid host address {ip:?}: publish on an IPv4 address of the node"
                    ))
                })?,
            };
            let host_port = match b.host_port.as_str() {
                "" => 0,
                p => p
                    .parse()
                    .map_err(|_| Error::InvalidArgument(format!("invalid host port {p:?}")))?,
            };
            out.push(Request {
                key: format!("{container_port}/{proto}"),
                container_port,
                host_ip,
                host_port,
                udp,
            });
        }
    }
    Ok(out)
}

/// The binding a container recorded (`docker port` shows it), as a request
/// again: a restarted engine publishes it anew.
pub fn recorded(key: &str, binding: &PortBinding) -> Option<Request> {
    let (port, proto) = key.split_once('/')?;
    Some(Request {
        key: key.to_owned(),
        container_port: port.parse().ok()?,
        host_ip: binding.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        host_port: binding.host_port.parse().ok()?,
        udp: proto == "udp",
    })
}

/// A socket bound on the node for one request.
pub enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl Bound {
    /// What the container records: the address and the port actually bound.
    pub fn binding(&self) -> PortBinding {
        let addr = match self {
            Bound::Tcp(l) => l.local_addr(),
            Bound::Udp(s) => s.local_addr(),
        };
        let (ip, port) = addr.map_or((Ipv4Addr::UNSPECIFIED.to_string(), 0), |a| {
            (a.ip().to_string(), a.port())
        });
        PortBinding {
            host_ip: ip,
            host_port: port.to_string(),
        }
    }
}

/// Binds `request` in the node of lab `lab`, with dockerd's message for a
/// port in use.
pub fn bind(runtime: &runtime::Runtime, lab: &str, request: &Request) -> Result<Bound> {
    let addr = SocketAddr::from((request.host_ip, request.host_port));
    let taken = |e: runtime::Error| match e {
        runtime::Error::Listen { source, .. }
            if source.kind() == std::io::ErrorKind::AddrNotAvailable =>
        {
            Error::InvalidArgument(format!(
                "driver failed programming external connectivity: {} is not an address of the node",
                request.host_ip
            ))
        }
        runtime::Error::Listen { .. } => Error::InvalidArgument(format!(
            "driver failed programming external connectivity: Bind for {addr} failed: port is already allocated"
        )),
        e => e.into(),
    };
    Ok(if request.udp {
        Bound::Udp(runtime.bind_udp(lab, addr).map_err(taken)?)
    } else {
        Bound::Tcp(runtime.listen_tcp(lab, addr).map_err(taken)?)
    })
}

/// Forwards what reaches `bound` to `target` (a container on the bridge)
/// until the returned task is aborted.
pub fn forward(
    runtime: Arc<runtime::Runtime>,
    lab: String,
    bound: Bound,
    target: SocketAddr,
) -> std::io::Result<tokio::task::AbortHandle> {
    let task = match bound {
        Bound::Tcp(listener) => {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(forward_tcp(listener, runtime, lab, target))
        }
        Bound::Udp(socket) => {
            socket.set_nonblocking(true)?;
            let socket = tokio::net::UdpSocket::from_std(socket)?;
            tokio::spawn(relay_udp(socket, runtime, lab, target))
        }
    };
    Ok(task.abort_handle())
}

async fn forward_tcp(
    listener: tokio::net::TcpListener,
    runtime: Arc<runtime::Runtime>,
    lab: String,
    target: SocketAddr,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        let runtime = runtime.clone();
        let lab = lab.clone();
        tokio::spawn(async move {
            let connected = tokio::task::spawn_blocking(move || {
                runtime.connect_tcp(&lab, target, Duration::from_secs(5))
            })
            .await;
            let Ok(Ok(upstream)) = connected else { return };
            if upstream.set_nonblocking(true).is_err() {
                return;
            }
            let Ok(mut upstream) = tokio::net::TcpStream::from_std(upstream) else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

/// Each client gets a socket of its own in the node's network, connected
/// to `target`, so the container's answers find their way back to it.
async fn relay_udp(
    socket: tokio::net::UdpSocket,
    runtime: Arc<runtime::Runtime>,
    lab: String,
    target: SocketAddr,
) {
    let socket = Arc::new(socket);
    let mut clients: HashMap<SocketAddr, Arc<tokio::net::UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        clients.retain(|_, up| Arc::strong_count(up) > 1);
        let upstream = match clients.get(&client) {
            Some(up) => up.clone(),
            None => {
                if clients.len() >= UDP_CLIENTS {
                    clients.clear();
                }
                let Some(up) = upstream(&runtime, &lab, target).await else {
                    continue;
                };
                let up = Arc::new(up);
                tokio::spawn(answer_client(socket.clone(), up.clone(), client));
                clients.insert(client, up.clone());
                up
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

async fn upstream(
    runtime: &Arc<runtime::Runtime>,
    lab: &str,
    target: SocketAddr,
) -> Option<tokio::net::UdpSocket> {
    let (runtime, lab) = (runtime.clone(), lab.to_owned());
    let std = tokio::task::spawn_blocking(move || {
        runtime.bind_udp(&lab, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
    })
    .await
    .ok()?
    .ok()?;
    std.set_nonblocking(true).ok()?;
    let up = tokio::net::UdpSocket::from_std(std).ok()?;
    up.connect(target).await.ok()?;
    Some(up)
}

/// Sends the container's datagrams back to `client` until it falls idle.
async fn answer_client(
    socket: Arc<tokio::net::UdpSocket>,
    upstream: Arc<tokio::net::UdpSocket>,
    client: SocketAddr,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = socket.send_to(&buf[..n], client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(key: &str, ip: &str, port: &str) -> HostConfig {
        HostConfig {
            port_bindings: Some(
                [(
                    key.to_owned(),
                    Some(vec![PortBinding {
                        host_ip: ip.into(),
                        host_port: port.into(),
                    }]),
                )]
                .into(),
            ),
            ..HostConfig::default()
        }
    }

    #[test]
    fn bindings_read_like_dockers() {
        let r = requested(&host("53/udp", "127.0.0.1", "5353")).expect("udp");
        assert_eq!(
            r,
            vec![Request {
                key: "53/udp".into(),
                container_port: 53,
                host_ip: Ipv4Addr::LOCALHOST,
                host_port: 5353,
                udp: true,
            }]
        );
        assert_eq!(
            requested(&host("80", "", "")).expect("tcp")[0].key,
            "80/tcp"
        );
        for (key, ip, port) in [
            ("80/sctp", "", "80"),
            ("x/tcp", "", "80"),
            ("80/tcp", "::1", "80"),
            ("80/tcp", "", "99999"),
        ] {
            assert!(
                requested(&host(key, ip, port)).is_err(),
                "{key} {ip} {port}"
            );
        }
        let back = recorded(
            "53/udp",
            &PortBinding {
                host_ip: "127.0.0.1".into(),
                host_port: "5353".into(),
            },
        );
        assert_eq!(back, Some(r[0].clone()));
    }
}
