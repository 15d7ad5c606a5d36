//! `voicemcu server`: builds the server's settings from the defaults, the
//! configuration file and the flags, and runs the QUIC server until Ctrl+C
//! or SIGTERM.

use std::process::ExitCode;

use anyhow::{bail, Context};
use voicemcu_quic::tls::Identity;
use voicemcu_quic::{
    default_certificate_files, dump_default_config, CertificateSource, QuicServer,
};

use voicemcu_quic::status::{default_status_socket, StatusSocket};

use crate::args::ServerArgs;
use crate::{record, shutdown};

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    if args.settings.dump_config {
        print!("{}", dump_default_config());
        return Ok(ExitCode::SUCCESS);
    }

    let settings = args.settings.settings()?;
    let mut options = settings.server_options(args.seed.unwrap_or_else(random_seed));
    if options.certificate == CertificateSource::Generate {
        options.certificate = persistent_certificate();
    }

    if args.settings.print_fingerprint {
        let CertificateSource::Files { cert, key } = &options.certificate else {
            bail!("no certificate to print: set --cert-file and --key-file, or HOME");
        };
        let identity = Identity::load_or_create(cert, key)?;
        println!("{}", identity.fingerprint());
        return Ok(ExitCode::SUCCESS);
    }

    let mut server =
        QuicServer::bind_with(options, settings.tuning()).context("could not start the server")?;
    let addr = server
        .local_addr()
        .context("could not read the bound address")?;
    println!("listening on {addr}");
    println!(
        "certificate fingerprint (give clients --cert-hash {})",
        server.fingerprint()
    );
    let status = open_status_socket(&args, &server).await;

    let recording = match &settings.record {
        Some(dir) => {
            let recording = record::start(dir, &mut server)?;
            println!("recording every room into {}", dir.display());
            Some(recording)
        }
        None => None,
    };

    let result = server.run(shutdown::signal()).await;
    if let Some(status) = status {
        status.abort();
    }
    // The server's leaves are queued for the writer by now: let it finish
    // the files even if the server failed.
    if let Some(recording) = recording {
        recording.finish().await;
    }
    result.context("server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// Opens the status socket the arguments ask for and answers on it in the
/// background. The server runs without one, with a warning, when it cannot
/// be opened: losing the status view is no reason to refuse calls.
async fn open_status_socket(
    args: &ServerArgs,
    server: &QuicServer,
) -> Option<tokio::task::JoinHandle<()>> {
    if args.no_status_socket {
        return None;
    }
    let Some(path) = args.status_socket.clone().or_else(default_status_socket) else {
        tracing::warn!(
            "neither XDG_DATA_HOME nor HOME is set, so there is no default status socket; \
             give --status-socket PATH to have one"
        );
        return None;
    };

    match StatusSocket::bind(&path).await {
        Ok(socket) => {
            println!(
                "status: voicemcu status --socket {}",
                socket.path().display()
            );
            let handle = server.status_handle();
            Some(tokio::spawn(socket.serve(handle)))
        }
        Err(error) => {
            tracing::warn!(%error, "running without a status socket");
            None
        }
    }
}

/// The certificate files in the data directory, so that the fingerprint
/// stays the same across restarts; a new certificate at every start when
/// no data directory can be found.
fn persistent_certificate() -> CertificateSource {
    match default_certificate_files() {
        Some(files) => {
            if let CertificateSource::Files { cert, .. } = &files {
                tracing::info!(cert = %cert.display(), "using the certificate in the data directory");
            }
            files
        }
        None => {
            tracing::warn!(
                "neither XDG_DATA_HOME nor HOME is set: using a new certificate, whose fingerprint changes at every start; set --cert-file and --key-file to keep one"
            );
            CertificateSource::Generate
        }
    }
}

/// A seed for client ids that differs between runs, so ids are not
/// predictable from one start to the next.
#[allow(clippy::disallowed_methods)]
fn random_seed() -> u64 {
    rand::random()
}
