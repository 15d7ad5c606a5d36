//! The timeline of the speech fixtures in `fixtures/speech/`, shared by the
//! tests and the demo.
//!
//! `fixtures/make-speech.sh` generates the three files with espeak-ng and
//! must place the speech exactly as these constants define. All three files
//! are 14.0 s long; each speaker talks alone in its own window, then all
//! three talk at once, and everything else is digital silence.

use std::path::PathBuf;

use crate::analysis::Span;

/// Length of every speech fixture, in seconds.
pub const DURATION_SECS: f64 = 14.0;

/// A stretch of time in seconds from the start of a fixture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeSpan {
    pub start_secs: f64,
    pub end_secs: f64,
}

impl TimeSpan {
    /// Returns the span in 48 kHz samples.
    pub fn to_samples(self) -> Span {
        Span::from_secs(self.start_secs, self.end_secs)
    }

    /// Returns whether `secs` lies in `start_secs..end_secs`.
    pub fn contains(self, secs: f64) -> bool {
        (self.start_secs..self.end_secs).contains(&secs)
    }
}

/// When all three speakers talk at once, each a different sentence.
pub const TOGETHER: TimeSpan = TimeSpan {
    start_secs: 11.0,
    end_secs: 13.5,
};

/// One speaker's fixture file and the windows in which it contains speech.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeechFixture {
    pub name: &'static str,
    /// Path relative to the workspace root.
    pub path: &'static str,
    /// The window in which this speaker talks alone.
    pub solo: TimeSpan,
    /// The window in which everyone talks ([`TOGETHER`]).
    pub together: TimeSpan,
    /// How espeak-ng voiced it, for logs and reports.
    pub voice: &'static str,
}

impl SpeechFixture {
    /// Returns the windows holding this speaker's speech, in order.
    pub fn speech(&self) -> [TimeSpan; 2] {
        [self.solo, self.together]
    }

    /// Returns whether this speaker talks at `secs`.
    pub fn speaks_at(&self, secs: f64) -> bool {
        self.speech().iter().any(|span| span.contains(secs))
    }

    /// Returns the file's absolute path in this source tree (see
    /// [`workspace_path`]).
    pub fn absolute_path(&self) -> PathBuf {
        workspace_path(self.path)
    }
}

/// Alice: espeak-ng `en-gb+f3`, pitch 60; alone during 0.5 to 3.5 s.
pub const ALICE: SpeechFixture = SpeechFixture {
    name: "alice",
    path: "fixtures/speech/alice.wav",
    solo: TimeSpan {
        start_secs: 0.5,
        end_secs: 3.5,
    },
    together: TOGETHER,
    voice: "en-gb+f3, pitch 60 (female, British English)",
};

/// Bob: espeak-ng `en-us`, pitch 30; alone during 4.0 to 7.0 s.
pub const BOB: SpeechFixture = SpeechFixture {
    name: "bob",
    path: "fixtures/speech/bob.wav",
    solo: TimeSpan {
        start_secs: 4.0,
        end_secs: 7.0,
    },
    together: TOGETHER,
    voice: "en-us, pitch 30 (male, American English)",
};

/// Carol: espeak-ng `en-029+f4`, pitch 85; alone during 7.5 to 10.5 s.
pub const CAROL: SpeechFixture = SpeechFixture {
    name: "carol",
    path: "fixtures/speech/carol.wav",
    solo: TimeSpan {
        start_secs: 7.5,
        end_secs: 10.5,
    },
    together: TOGETHER,
    voice: "en-029+f4, pitch 85 (female, Caribbean English)",
};

/// All speech fixtures, in speaking order.
pub const SPEAKERS: [SpeechFixture; 3] = [ALICE, BOB, CAROL];

/// Resolves a path relative to the workspace root, found from this crate's
/// location at compile time.
///
/// NOTE: this only works where the source tree is present, as in tests and
/// `cargo run`; an installed binary must take fixture paths from its user.
pub fn workspace_path(relative: &str) -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir);
    root.join(relative)
}
