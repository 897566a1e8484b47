//! A local bootstrap and relay server, so nodes find each other with no
//! internet: the conductor's defaults are public servers.
//!
//! `kitsune2_bootstrap_srv` serves bootstrap and the iroh relay on one
//! plain-HTTP port. Several sidecars on one machine share the first one's
//! server; across machines, point every node at one LAN address.

use std::net::SocketAddr;
use thiserror::Error;

/// Why the bootstrap server could not start.
#[derive(Debug, Error)]
pub enum BootstrapServerError {
    /// The server failed to bind or start.
    #[error("could not start the bootstrap/relay server on {addr}: {source}")]
    Start {
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running bootstrap + relay server; dropping it shuts it down.
pub struct BootstrapServer {
    server: Option<kitsune2_bootstrap_srv::BootstrapSrv>,
    addr: SocketAddr,
}

impl BootstrapServer {
    /// Starts a server on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr) -> Result<BootstrapServer, BootstrapServerError> {
        let mut config = kitsune2_bootstrap_srv::Config::testing();
        config.listen_address_list = vec![addr];
        // The relay's QUIC address discovery is not needed on a LAN.
        config.quic_bind_addr = None;
        let server =
            tokio::task::spawn_blocking(move || kitsune2_bootstrap_srv::BootstrapSrv::new(config))
                .await
                .expect("bootstrap server start task does not panic")
                .map_err(|source| BootstrapServerError::Start { addr, source })?;
        let addr = *server
            .listen_addrs()
            .first()
            .expect("a started server listens somewhere");
        Ok(BootstrapServer {
            server: Some(server),
            addr,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give conductors for both bootstrap and relay.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BootstrapServer {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.shutdown();
        }
    }
}

/// Whether something already accepts connections at `addr` (another
/// sidecar's rendezvous, typically).
pub async fn is_listening(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}
