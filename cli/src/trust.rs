//! How the client decides to trust a server's certificate: `--cert-hash`
//! pins it, `--danger-skip-verify` skips the check, and otherwise the
//! known-servers file decides, as SSH's `known_hosts` does. A server seen
//! for the first time is trusted after the user confirms its fingerprint
//! at a terminal prompt, or with `--trust-new`; a server whose fingerprint
//! changed is rejected.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use voicemcu_quic::client::CONNECT_TIMEOUT;
use voicemcu_quic::known_servers::{
    default_path, probe_fingerprint, server_key, KnownServers, Verdict, KNOWN_SERVERS_ENV,
};
use voicemcu_quic::tls::SERVER_NAME;
use voicemcu_quic::{Fingerprint, Trust};

use crate::args::ClientArgs;

/// Returns the trust for connecting to `server`, which the user typed as
/// `args.server`. May probe the server's certificate and ask on the
/// terminal, so it must run before anything else reads stdin.
pub async fn resolve(args: &ClientArgs, server: SocketAddr) -> anyhow::Result<Trust> {
    if let Some(hash) = &args.cert_hash {
        return Ok(Trust::Pinned(Fingerprint::parse(hash)?));
    }
    if args.danger_skip_verify {
        eprintln!(
            "voicemcu: warning: --danger-skip-verify accepts any certificate; anyone on the network path can impersonate the server and listen in"
        );
        return Ok(Trust::SkipVerify);
    }

    let path = known_servers_path(args)?;
    let mut store = KnownServers::load(&path)?;
    let key = server_key(&args.server, server);
    let seen = probe_fingerprint(server, SERVER_NAME, CONNECT_TIMEOUT)
        .await
        .with_context(|| format!("could not read the certificate of {key}"))?;

    let verdict = store.check(&key, seen);
    let interactive = std::io::stdin().is_terminal();
    let trusted = decide(
        verdict,
        &key,
        seen,
        &store,
        args.trust_new,
        interactive,
        || ask(&key, seen, store.path().display().to_string()),
    )?;
    if trusted == Decision::Remember {
        store.add(&key, seen)?;
        eprintln!(
            "voicemcu: added {key} with fingerprint {seen} to {}",
            store.path().display()
        );
    }
    Ok(Trust::Pinned(seen))
}

fn known_servers_path(args: &ClientArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.known_servers {
        return Ok(path.clone());
    }
    match default_path() {
        Some(path) => Ok(path),
        None => bail!(
            "cannot find the known-servers file: none of {KNOWN_SERVERS_ENV}, XDG_CONFIG_HOME and HOME is set; pass --known-servers FILE or --cert-hash"
        ),
    }
}

/// What to do with a probed fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// It is already in the file.
    Trusted,
    /// Trust it and add it to the file.
    Remember,
}

/// Decides from the known-servers verdict and, for a new server, from
/// `--trust-new` or the user's reply to `ask`, which runs only when stdin
/// is a terminal.
fn decide(
    verdict: Verdict,
    key: &str,
    seen: Fingerprint,
    store: &KnownServers,
    trust_new: bool,
    interactive: bool,
    ask: impl FnOnce() -> anyhow::Result<bool>,
) -> anyhow::Result<Decision> {
    let file = store.path().display();
    match verdict {
        Verdict::Known => Ok(Decision::Trusted),
        Verdict::Changed { stored } => bail!(
            "WARNING: THE CERTIFICATE OF {key} HAS CHANGED. Someone may be impersonating the \
             server to listen in, or its operator replaced the certificate. Remembered \
             fingerprint: {stored}; presented fingerprint: {seen}. Connection refused. If the \
             operator confirms the new fingerprint over a channel you trust, delete the line \
             for {key} from {file} and connect again, or pass --cert-hash {seen}."
        ),
        Verdict::New if trust_new => Ok(Decision::Remember),
        Verdict::New if interactive => {
            if ask()? {
                Ok(Decision::Remember)
            } else {
                bail!("{key} is not trusted: you declined its fingerprint {seen}")
            }
        }
        Verdict::New => bail!(
            "{key} is not in the known-servers file {file}, and stdin is not a terminal to ask \
             about its certificate fingerprint {seen}. Check that fingerprint with the server's \
             operator, then pass --trust-new to remember it, or --cert-hash {seen}."
        ),
    }
}

/// Shows the fingerprint on stderr and reads yes or no from stdin.
fn ask(key: &str, seen: Fingerprint, file: String) -> anyhow::Result<bool> {
    let mut stderr = std::io::stderr();
    write!(
        stderr,
        "voicemcu: {key} is not in {file}.\n\
         Its certificate fingerprint (SHA-256) is\n    {seen}\n\
         Compare it with the one the server printed at start, over a channel you trust.\n\
         Trust this server and remember it? [y/N] "
    )?;
    stderr.flush()?;

    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("failed to read the reply from stdin")?;
    Ok(is_yes(&answer))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HEX_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn store() -> (tempfile::TempDir, KnownServers) {
        let dir = tempfile::tempdir().unwrap();
        let store = KnownServers::load(&dir.path().join("known_servers")).unwrap();
        (dir, store)
    }

    fn never_asked() -> anyhow::Result<bool> {
        panic!("asked when no question was expected")
    }

    #[test]
    fn known_server_trusted_without_asking() {
        let (_dir, store) = store();
        let seen = Fingerprint::parse(HEX_A).unwrap();
        let decision = decide(
            Verdict::Known,
            "h:1",
            seen,
            &store,
            false,
            false,
            never_asked,
        );
        assert_eq!(decision.unwrap(), Decision::Trusted);
    }

    #[test]
    fn changed_fingerprint_rejected_loudly() {
        let (_dir, store) = store();
        let seen = Fingerprint::parse(HEX_B).unwrap();
        let stored = Fingerprint::parse(HEX_A).unwrap();
        let error = decide(
            Verdict::Changed { stored },
            "h:1",
            seen,
            &store,
            true,
            true,
            never_asked,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("WARNING: THE CERTIFICATE OF h:1 HAS CHANGED"),
            "{error}"
        );
        assert!(error.contains(HEX_A), "{error}");
        assert!(error.contains(HEX_B), "{error}");
    }

    #[test]
    fn new_server_needs_terminal_or_flag() {
        let (_dir, store) = store();
        let seen = Fingerprint::parse(HEX_A).unwrap();
        let error = decide(Verdict::New, "h:1", seen, &store, false, false, never_asked)
            .unwrap_err()
            .to_string();
        assert!(error.contains("pass --trust-new"), "{error}");

        let flagged = decide(Verdict::New, "h:1", seen, &store, true, false, never_asked);
        assert_eq!(flagged.unwrap(), Decision::Remember);
    }

    #[test]
    fn new_server_asked_at_terminal() {
        let (_dir, store) = store();
        let seen = Fingerprint::parse(HEX_A).unwrap();
        let accepted = decide(Verdict::New, "h:1", seen, &store, false, true, || Ok(true));
        assert_eq!(accepted.unwrap(), Decision::Remember);
        let declined = decide(Verdict::New, "h:1", seen, &store, false, true, || Ok(false));
        assert!(declined.unwrap_err().to_string().contains("you declined"));
    }

    #[test]
    fn answers_read_as_yes() {
        assert!(is_yes("y\n"));
        assert!(is_yes(" YES \n"));
        assert!(!is_yes("\n"));
        assert!(!is_yes("n\n"));
        assert!(!is_yes("yep\n"));
    }
}
