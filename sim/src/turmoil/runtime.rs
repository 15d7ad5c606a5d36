//! A quinn [`Runtime`] for turmoil hosts.
//!
//! Each turmoil host runs its software on its own current-thread tokio
//! runtime whose clock is paused and advanced by the simulation, so tokio's
//! timers, `tokio::spawn` and `tokio::time::Instant::now` already run in
//! simulated time. [`SimRuntime`] hands quinn exactly those. It differs
//! from `quinn::TokioRuntime` in one way that matters here: it refuses to
//! wrap a real `std::net::UdpSocket`, so an endpoint inside the simulation
//! can never reach the host's network, not even through
//! `Endpoint::rebind`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::{AsyncTimer, AsyncUdpSocket, Runtime};

/// quinn's timers, task spawning and clock, taken from the turmoil host's
/// tokio runtime. Use only from a host's software.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimRuntime;

impl Runtime for SimRuntime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(SimTimer {
            sleep: Box::pin(tokio::time::sleep_until(at.into())),
        })
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        // quinn watches its drivers itself; the handle is not needed.
        drop(tokio::spawn(future));
    }

    fn wrap_udp_socket(&self, _socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a simulated endpoint cannot use a real UDP socket; bind a SimUdpSocket inside the turmoil host instead",
        ))
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A tokio sleep on the host's simulated clock.
#[derive(Debug)]
struct SimTimer {
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl AsyncTimer for SimTimer {
    fn reset(self: Pin<&mut Self>, at: Instant) {
        self.get_mut().sleep.as_mut().reset(at.into());
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context) -> Poll<()> {
        Future::poll(self.get_mut().sleep.as_mut(), cx)
    }
}
