//! `voicemcu server`: builds the server's settings from the arguments and
//! runs the QUIC server until Ctrl+C or SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use voicemcu_core::codec::OpusSettings;
use voicemcu_core::jitter::JitterConfig;
use voicemcu_core::mixer::MixerConfig;
use voicemcu_core::server::ServerConfig;
use voicemcu_quic::{CertificateSource, QuicServer, ServerOptions};

use crate::args::ServerArgs;
use crate::shutdown;

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let options = ServerOptions {
        bind: args.bind,
        certificate: certificate_source(&args),
        core: core_config(&args),
        seed: args.seed.unwrap_or_else(random_seed),
    };

    let server = QuicServer::bind(options).context("could not start the server")?;
    let addr = server
        .local_addr()
        .context("could not read the bound address")?;
    println!("listening on {addr}");
    println!(
        "certificate fingerprint (give clients --cert-hash {})",
        server.fingerprint()
    );

    server
        .run(shutdown::signal())
        .await
        .context("server failed")?;
    Ok(ExitCode::SUCCESS)
}

fn certificate_source(args: &ServerArgs) -> CertificateSource {
    match (&args.cert_file, &args.key_file) {
        (Some(cert), Some(key)) => CertificateSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        // clap's `requires` makes the two flags come together.
        _ => CertificateSource::Generate,
    }
}

fn core_config(args: &ServerArgs) -> ServerConfig {
    let defaults = ServerConfig::default();
    ServerConfig {
        max_room_size: args.max_room_size as usize,
        cleanup_interval: Duration::from_secs(args.cleanup_interval),
        mixer: MixerConfig {
            opus: OpusSettings {
                bitrate: args.bitrate,
                ..defaults.mixer.opus
            },
            jitter: JitterConfig {
                depth: args.jitter_depth,
                ..defaults.mixer.jitter
            },
            vad_threshold: args.vad_threshold,
        },
        ..defaults
    }
}

/// A seed for client ids that differs between runs, so ids are not
/// predictable from one start to the next.
#[allow(clippy::disallowed_methods)]
fn random_seed() -> u64 {
    rand::random()
}
