//! The built-in scenarios, in the order `voicemcu sim list` prints them.
//!
//! Each one starts from [`base`] (three participants on a clean 10 ms
//! network for 10 simulated seconds) and changes what it exercises. Every
//! invariant in [`super::invariants`] is checked in every scenario. The
//! fields of [`Expectations`] and of each [`Participant`] tell the checker
//! what the scenario did on purpose.

use std::time::Duration;

use voicemcu_quic::endpoint::IDLE_TIMEOUT;
use voicemcu_quic::DialectChoice;

use super::link_faults::{GilbertElliott, LossModel};
use super::scenario::{
    Conference, Expectations, ExpectedExit, Latency, NetworkConfig, Participant, RunError, Scenario,
};

/// Returns every built-in scenario.
pub fn all() -> Vec<Scenario> {
    vec![
        clean(),
        lossy(),
        partition(),
        bursty(),
        duplicate(),
        vanish(),
        silence(),
        rebind(),
        restart(),
        moderation(),
        churn(),
        host_churn_native(),
        host_churn_legacy(),
        drift(),
        drift_long(),
        sequence_restart(),
        canary(),
    ]
}

/// Returns the built-in scenario called `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|scenario| scenario.name == name)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// Three participants joining 200 ms apart, with tones well apart in
/// frequency.
fn three_participants() -> Vec<Participant> {
    [("alice", 500.0), ("bob", 800.0), ("carol", 1300.0)]
        .into_iter()
        .enumerate()
        .map(|(index, (name, tone_hz))| {
            Participant::new(name, tone_hz, ms(200 * (index as u64 + 1)))
        })
        .collect()
}

fn participant_mut<'a>(scenario: &'a mut Scenario, name: &str) -> &'a mut Participant {
    scenario
        .participants
        .iter_mut()
        .find(|participant| participant.name == name)
        .unwrap_or_else(|| panic!("the scenario has no participant {name}"))
}

/// Three participants on a clean 10 ms network for 10 simulated seconds,
/// which every scenario changes.
fn base(name: &'static str, summary: &'static str) -> Scenario {
    Scenario {
        name,
        summary,
        network: NetworkConfig {
            latency: Latency::Fixed(ms(10)),
            loss: LossModel::None,
            duplicate: 0.0,
            link_fail_rate: 0.0,
        },
        participants: three_participants(),
        leave_at: secs(10),
        expectations: Expectations {
            settled_from: secs(2),
            min_heard_fraction: 0.95,
            recovery_bound: Duration::ZERO,
            // Measured over seeds 1 to 3 of every scenario: 120 to 210 ms,
            // outside the recovery after an outage. The default jitter
            // buffers hold 60 ms on each side and drop the oldest packets
            // beyond 1 s, so a delay past this ceiling means a buffer grew.
            max_delay: ms(600),
        },
        server_idle_timeout: IDLE_TIMEOUT,
        restartable_server: false,
        long: false,
        fails_on_purpose: false,
        body: run_without_faults,
    }
}

fn run_without_faults(conference: &mut Conference<'_>) -> Result<(), RunError> {
    conference.run_to_end()
}

/// Three clients on a clean 10 ms network for 10 simulated seconds.
pub fn clean() -> Scenario {
    base(
        "clean",
        "three clients on a clean 10 ms network for 10 simulated seconds",
    )
}

/// Three clients with 5 % independent loss and 20 to 80 ms of reordering
/// latency.
pub fn lossy() -> Scenario {
    let mut scenario = base(
        "lossy",
        "three clients, 5 % random loss, 20-80 ms latency with reordering",
    );
    scenario.network.latency = Latency::Reordering {
        min: ms(20),
        max: ms(80),
    };
    scenario.network.loss = LossModel::Independent(0.05);
    scenario.expectations.settled_from = secs(3);
    scenario.expectations.min_heard_fraction = 0.8;
    scenario
}

/// The participant cut off in the `partition` scenario, and when.
const PARTITIONED: &str = "alice";
const PARTITION_AT: Duration = Duration::from_secs(3);
const REPAIR_AT: Duration = Duration::from_secs(6);

fn partition_one_client(conference: &mut Conference<'_>) -> Result<(), RunError> {
    conference.run_until(PARTITION_AT)?;
    // Models alice's access link going down (a Wi-Fi drop) for 3 s: shorter
    // than QUIC's 30 s idle timeout, so the connection should survive it.
    conference.partition(PARTITIONED);
    conference.run_until(REPAIR_AT)?;
    conference.repair(PARTITIONED);
    conference.run_to_end()
}

/// Three clients; alice is cut off from the server for 3 s and must hear
/// and be heard again soon after the link is repaired.
pub fn partition() -> Scenario {
    let mut scenario = base(
        "partition",
        "alice is partitioned from the server from 3 s to 6 s, then must resume audio",
    );
    scenario.network.latency = Latency::Reordering {
        min: ms(5),
        max: ms(25),
    };
    // Long enough to judge two markers of every pair after the recovery
    // bound, where a queue left behind by the outage (such as quinn's
    // datagram send buffer) shows up as extra delay.
    scenario.leave_at = secs(16);
    // Measured over seeds 1 to 8: 0.4 s to 4.8 s. After 3 s without
    // acknowledgements quinn's probe timeout has backed off to seconds, and
    // datagrams wait for the congestion window until a probe is
    // acknowledged. Exponential backoff bounds that wait near the outage's
    // own length, so the bound is twice the outage.
    scenario.expectations.recovery_bound = secs(6);
    scenario.body = partition_one_client;
    scenario
}

/// Loss in bursts: about 6 % of datagrams, in runs of four on average.
const BURSTS: GilbertElliott = GilbertElliott {
    good_to_bad: 0.02,
    bad_to_good: 0.25,
    loss_in_good: 0.005,
    loss_in_bad: 0.75,
};

/// Three clients under Gilbert-Elliott bursty loss.
pub fn bursty() -> Scenario {
    let mut scenario = base(
        "bursty",
        "three clients, bursty loss (Gilbert-Elliott, about 6 % in runs of 4), 20-60 ms latency",
    );
    scenario.network.latency = Latency::Reordering {
        min: ms(20),
        max: ms(60),
    };
    scenario.network.loss = LossModel::Bursty(BURSTS);
    scenario.leave_at = secs(12);
    scenario.expectations.settled_from = secs(3);
    // A sender whose link spends long in the bad state loses whole 100 ms
    // windows: over seeds 1 to 7 the lowest share heard was 69 %.
    scenario.expectations.min_heard_fraction = 0.65;
    scenario
}

/// Three clients with a quarter of all datagrams delivered twice.
pub fn duplicate() -> Scenario {
    let mut scenario = base(
        "duplicate",
        "three clients, 25 % of datagrams delivered twice, 5-40 ms latency with reordering",
    );
    scenario.network.latency = Latency::Reordering {
        min: ms(5),
        max: ms(40),
    };
    scenario.network.duplicate = 0.25;
    scenario
}

/// The participant who vanishes in the `vanish` scenario, and when.
const VANISHING: &str = "carol";
const VANISH_AT: Duration = Duration::from_secs(4);

/// The idle timeout of the servers in `vanish` and `restart`: shorter than
/// the default 30 s to keep the runs short. Operators can set it with the
/// server's `idle_timeout` setting.
const SHORT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

fn vanish_one_client(conference: &mut Conference<'_>) -> Result<(), RunError> {
    conference.run_until(VANISH_AT)?;
    // Models carol's laptop losing power mid-call: no close reaches the
    // server, which has to notice through the idle timeout.
    conference.vanish(VANISHING);
    conference.run_to_end()
}

/// Carol's link is cut for good at 4 s; the server times her out and the
/// others carry on.
pub fn vanish() -> Scenario {
    let mut scenario = base(
        "vanish",
        "carol vanishes at 4 s without closing; the server times her out, the others carry on",
    );
    participant_mut(&mut scenario, VANISHING).expected_exit = ExpectedExit::ConnectionLost;
    scenario.server_idle_timeout = SHORT_IDLE_TIMEOUT;
    scenario.leave_at = VANISH_AT + SHORT_IDLE_TIMEOUT + secs(4);
    scenario.body = vanish_one_client;
    scenario
}

/// Bob stops talking for 10 s and starts again.
pub fn silence() -> Scenario {
    let mut scenario = base(
        "silence",
        "bob sends silence from 3 s to 13 s, then talks again and must be heard within 1 s",
    );
    participant_mut(&mut scenario, "bob").silent = vec![(secs(3), secs(13))];
    scenario.leave_at = secs(16);
    scenario.expectations.recovery_bound = secs(1);
    scenario
}

/// Alice's client moves to a new UDP port mid-call.
pub fn rebind() -> Scenario {
    let mut scenario = base(
        "rebind",
        "alice's client moves to a new UDP port at 4 s (QUIC migration); audio must continue",
    );
    participant_mut(&mut scenario, "alice").rebinds_at = Some(secs(4));
    scenario.network.latency = Latency::Reordering {
        min: ms(5),
        max: ms(25),
    };
    scenario.expectations.recovery_bound = secs(1);
    scenario
}

/// When the server restarts in the `restart` scenario.
const RESTART_AT: Duration = Duration::from_secs(4);

fn restart_the_server(conference: &mut Conference<'_>) -> Result<(), RunError> {
    conference.run_until(RESTART_AT)?;
    // Models the server process crashing and a supervisor starting it
    // again at once, on the same address and with the same certificate.
    conference.restart_server();
    conference.run_to_end()
}

/// Restarts the server under three clients; two more join afterwards.
pub fn restart() -> Scenario {
    let mut scenario = base(
        "restart",
        "the server restarts at 4 s: its stateless resets end the three clients' sessions \
         within 2 s, two clients that join later talk normally",
    );
    for participant in &mut scenario.participants {
        participant.expected_exit = ExpectedExit::ConnectionLost;
    }
    scenario
        .participants
        .push(Participant::new("dave", 1700.0, secs(6)));
    scenario
        .participants
        .push(Participant::new("erin", 2100.0, ms(6200)));
    // A short idle timeout still, so that a server that stopped sending
    // resets fails the run quickly instead of hanging it.
    scenario.server_idle_timeout = SHORT_IDLE_TIMEOUT;
    scenario.restartable_server = true;
    scenario.leave_at = RESTART_AT + secs(8);
    scenario.body = restart_the_server;
    scenario
}

/// Blocking, muting and force-muting under loss.
pub fn moderation() -> Scenario {
    let mut scenario = base(
        "moderation",
        "bob blocks carol, alice mutes herself, alice (host) force-mutes carol; 3 % loss",
    );
    scenario.network.latency = Latency::Reordering {
        min: ms(10),
        max: ms(40),
    };
    scenario.network.loss = LossModel::Independent(0.03);
    participant_mut(&mut scenario, "bob").commands =
        vec![(secs(3), "/block carol"), (secs(6), "/unblock carol")];
    participant_mut(&mut scenario, "alice").commands = vec![
        (secs(7), "/mute on"),
        (secs(9), "/mute off"),
        (secs(10), "/forcemute carol"),
        (secs(12), "/forceunmute carol"),
    ];
    scenario.leave_at = secs(15);
    scenario.expectations.min_heard_fraction = 0.85;
    scenario.expectations.recovery_bound = ms(1500);
    scenario
}

/// Alice and bob stay while six clients come and go one after another.
pub fn churn() -> Scenario {
    let mut scenario = base(
        "churn",
        "alice and bob stay while six clients join and leave in turn; the server's state \
         returns to its baseline",
    );
    scenario.participants.truncate(2);
    let churners = [
        ("c1", 1300.0, 1000, 3000),
        ("c2", 1700.0, 2000, 4500),
        ("c3", 2100.0, 3500, 5500),
        ("c4", 2500.0, 5000, 7000),
        ("c5", 2900.0, 6500, 8500),
        ("c6", 3300.0, 8000, 10_000),
    ];
    for (name, tone_hz, joins, leaves) in churners {
        let mut participant = Participant::new(name, tone_hz, ms(joins));
        participant.leaves_at = Some(ms(leaves));
        scenario.participants.push(participant);
    }
    scenario.leave_at = secs(13);
    scenario
}

/// Three early clients leave one after another, the host first each time,
/// and a new client joins 50 ms before each leave. Every leave moves the
/// host role, which pushes a full `RoomInfo` to everyone while the
/// newcomer's `ClientJoined` is in flight.
fn host_churn(name: &'static str, summary: &'static str, dialect: DialectChoice) -> Scenario {
    let mut scenario = base(name, summary);
    scenario.network.latency = Latency::Reordering {
        min: ms(5),
        max: ms(80),
    };
    let early = [("h1", 1100.0), ("h2", 1400.0), ("h3", 1700.0)];
    let mut participants = Vec::new();
    for (index, (name, tone_hz)) in early.into_iter().enumerate() {
        let mut participant = Participant::new(name, tone_hz, ms(100 + 100 * index as u64));
        participant.leaves_at = Some(secs(2 * (index as u64 + 1)));
        participants.push(participant);
    }
    participants.push(Participant::new("alice", 500.0, ms(500)));
    let late = [("n1", 2000.0), ("n2", 2300.0), ("n3", 2600.0)];
    for (index, (name, tone_hz)) in late.into_iter().enumerate() {
        let joins = secs(2 * (index as u64 + 1)) - ms(50);
        participants.push(Participant::new(name, tone_hz, joins));
    }
    for participant in &mut participants {
        participant.dialect = dialect;
    }
    scenario.participants = participants;
    scenario.leave_at = secs(10);
    scenario.expectations.settled_from = secs(3);
    // Ten tones share the mix at a lower level, where each marker's dip
    // falls below the voice activity detector's threshold and empties
    // more of its 100 ms window.
    scenario.expectations.min_heard_fraction = 0.7;
    scenario
}

/// Host handovers racing with joins, native dialect: every roster must
/// end equal to the server's.
pub fn host_churn_native() -> Scenario {
    host_churn(
        "host-churn",
        "the host leaves three times while a client joins; 5-80 ms reordering latency",
        DialectChoice::Auto,
    )
}

/// Runs `host-churn` with 0.1-dialect clients, whose pushes can overtake
/// each other. Their rosters are measured, not required to agree.
pub fn host_churn_legacy() -> Scenario {
    host_churn(
        "legacy-host-churn",
        "host-churn with 0.1-dialect clients; reports how their rosters diverge",
        DialectChoice::Legacy,
    )
}

/// How far the drifting clocks run from true time: 0.5 %, a poor but real
/// sound card crystal (good ones stay within 0.01 %).
const DRIFT_PPM: i32 = 5_000;

/// Returns a conference of `length` in which alice's sound card runs fast
/// and bob's slow. Alice sends more frames than the server mixes, so the
/// server's jitter buffer for her fills. Bob plays out slower than the
/// server sends, so his own buffer fills. Both must drain the excess
/// instead of letting the delay grow.
fn drifting(name: &'static str, summary: &'static str, length: Duration) -> Scenario {
    let mut scenario = base(name, summary);
    scenario.network.latency = Latency::Reordering {
        min: ms(10),
        max: ms(30),
    };
    participant_mut(&mut scenario, "alice").clock_skew_ppm = DRIFT_PPM;
    participant_mut(&mut scenario, "bob").clock_skew_ppm = -DRIFT_PPM;
    scenario.leave_at = length;
    // Without the drift drain, 0.5 % adds 100 ms of delay every 20 s on
    // alice's path, where her frames pile up at the server, and on bob's,
    // where the mix piles up at his client. Carol hearing alice then
    // crosses this ceiling within a minute. With the drain, each buffer
    // stays within about twice its depth, 120 ms.
    scenario.expectations.max_delay = ms(400);
    scenario
}

/// Returns 90 s of 0.5 % clock drift, with one fast and one slow client.
pub fn drift() -> Scenario {
    drifting(
        "drift",
        "alice's audio clock runs 0.5 % fast and bob's 0.5 % slow for 90 s; the delay must \
         stay bounded",
        secs(90),
    )
}

/// Returns the `drift` conference for 15 simulated minutes.
pub fn drift_long() -> Scenario {
    let mut scenario = drifting(
        "drift-long",
        "drift for 15 simulated minutes: 4.5 s of clock difference each way",
        secs(15 * 60),
    );
    scenario.long = true;
    scenario
}

/// Makes each sender start its sequence numbers over once, in a different
/// way.
pub fn sequence_restart() -> Scenario {
    let mut scenario = base(
        "sequence-restart",
        "each client's sender restarts its sequence numbers once: back to 0, across the wrap, \
         and 17 frames back; each must be heard again within 1.5 s",
    );
    scenario.network.latency = Latency::Reordering {
        min: ms(10),
        max: ms(40),
    };
    // Alice's sequence is near 190 at 4 s: back to 0 is far behind the
    // playout point, past the buffer's capacity.
    participant_mut(&mut scenario, "alice").sequence_restarts = vec![(secs(4), 0)];
    // Bob jumps to just below the wrap at 5 s, which is also far behind.
    participant_mut(&mut scenario, "bob").sequence_restarts = vec![(secs(5), u32::MAX - 40)];
    // Carol's sequence is near 267 at 6 s: 250 lands inside the window of
    // packets already played, so they look late, not like a new stream.
    participant_mut(&mut scenario, "carol").sequence_restarts = vec![(secs(6), 250)];
    scenario.leave_at = secs(10);
    scenario.expectations.recovery_bound = ms(1500);
    scenario
}

/// Returns the `clean` conference held to a 1 ms delay ceiling, which no
/// network can meet: every run breaks `delay-ceiling`. It shows what a
/// failure prints, and its reproduction command must rerun it exactly.
pub fn canary() -> Scenario {
    let mut scenario = base(
        "canary",
        "fails on purpose: the clean conference held to a 1 ms delay ceiling",
    );
    scenario.expectations.max_delay = ms(1);
    scenario.fails_on_purpose = true;
    scenario
}
