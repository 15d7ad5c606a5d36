//! quinn's UDP socket abstraction over turmoil's simulated UDP.
//!
//! quinn drives its socket through [`AsyncUdpSocket::poll_recv`], a
//! poll-style receive, but `turmoil::net::UdpSocket` (0.7) only offers
//! `async fn readable()` and a non-blocking `try_recv_from`. [`SimUdpSocket`]
//! bridges the two the way tokio's own sockets do: it keeps one boxed
//! `readable()` future, polls it with quinn's waker, and once it completes
//! drains the queue with `try_recv_from` until that returns `WouldBlock`.
//!
//! The future has to be dropped before `try_recv_from` is called. While
//! pending, turmoil's `readable()` holds the lock on the socket's receive
//! queue, and `try_recv_from` only `try_lock`s it, so it would report an
//! empty queue. Once the future completes it has released the lock and
//! parked the datagram it saw in the socket's one-slot buffer, where
//! `try_recv_from` finds it first. A datagram is therefore never lost or
//! reordered by this bridge.
//!
//! Sending needs no readiness: turmoil's UDP has no back-pressure, so
//! `try_send_to` never returns `WouldBlock` and [`AlwaysWritable`] is
//! always ready.
//!
//! Loss and duplication ([`super::link_faults`]) are applied here, at the
//! sender, with an RNG seeded per socket, because turmoil's `fail_rate`
//! models something else: a link that breaks drops every datagram in
//! flight on it at once (see [`super::scenario::NetworkConfig`]).

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

use super::link_faults::{FaultState, SendFaults};

/// A pending `readable()` call on the shared turmoil socket.
type Readable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A turmoil UDP socket that quinn can use, built inside a turmoil host.
pub struct SimUdpSocket {
    socket: Arc<::turmoil::net::UdpSocket>,
    local_addr: SocketAddr,
    readable: Mutex<Option<Readable>>,
    faults: Option<Mutex<FaultState>>,
}

impl SimUdpSocket {
    /// Binds a simulated socket on the current turmoil host. Must be called
    /// from a host's software, inside the simulation.
    ///
    /// `faults` decide which datagrams sent are lost or duplicated, drawn
    /// from an RNG seeded with `fault_seed`.
    pub async fn bind(
        addr: SocketAddr,
        faults: SendFaults,
        fault_seed: u64,
    ) -> io::Result<SimUdpSocket> {
        let socket = ::turmoil::net::UdpSocket::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let faults = faults
            .is_active()
            .then(|| Mutex::new(FaultState::new(faults, fault_seed)));
        Ok(SimUdpSocket {
            socket: Arc::new(socket),
            local_addr,
            readable: Mutex::new(None),
            faults,
        })
    }

    /// Returns how many copies of the next datagram to send.
    fn copies_of_next_datagram(&self) -> usize {
        let Some(faults) = &self.faults else {
            return 1;
        };
        faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .copies_of_next()
    }

    fn readable_future(&self) -> Readable {
        let socket = self.socket.clone();
        Box::pin(async move { socket.readable().await })
    }

    /// Moves datagrams already queued on the socket into quinn's buffers and
    /// returns how many it moved, stopping at the first empty read.
    fn drain_queued(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let mut received = 0;
        for (buf, meta) in bufs.iter_mut().zip(meta.iter_mut()) {
            match self.socket.try_recv_from(buf) {
                Ok((len, addr)) => {
                    *meta = RecvMeta {
                        addr,
                        len,
                        stride: len,
                        ecn: None,
                        dst_ip: None,
                    };
                    received += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        Ok(received)
    }
}

impl fmt::Debug for SimUdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimUdpSocket")
            .field("local_addr", &self.local_addr)
            .field("send_faults", &self.faults.is_some())
            .finish()
    }
}

impl AsyncUdpSocket for SimUdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // quinn only batches datagrams (GSO) up to `max_transmit_segments`,
        // which is 1 here, but a segmented transmit is still split correctly.
        let segment = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        for datagram in transmit.contents.chunks(segment) {
            for _ in 0..self.copies_of_next_datagram() {
                self.socket.try_send_to(datagram, transmit.destination)?;
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut readable = self.readable.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(future) = readable.as_mut() {
                match future.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => {
                        // Dropping the finished future releases the queue's
                        // lock before `try_recv_from` needs it.
                        *readable = None;
                        result?;
                    }
                }
            }

            let received = self.drain_queued(bufs, meta)?;
            if received > 0 {
                return Poll::Ready(Ok(received));
            }
            *readable = Some(self.readable_future());
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    fn may_fragment(&self) -> bool {
        // turmoil delivers every datagram whole or not at all.
        false
    }
}

/// The write-readiness poller of a [`SimUdpSocket`]: turmoil's UDP never
/// applies back-pressure, so a send can always be attempted.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
