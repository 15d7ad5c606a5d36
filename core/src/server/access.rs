//! Room access control: room passwords and the ban list that keeps a kicked
//! client's address out of its room for a while.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::time::Instant;

/// Room password length at most, in bytes.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Compares a presented password with a room's password. The running time
/// depends only on the length of `presented`, which its sender already
/// knows, so timing reveals nothing about the room's password.
pub(crate) fn password_matches(room_password: &str, presented: &str) -> bool {
    let expected = room_password.as_bytes();
    let presented = presented.as_bytes();

    let mut difference = u8::from(expected.len() != presented.len());
    for (index, byte) in presented.iter().enumerate() {
        let expected_byte = expected.get(index).copied().unwrap_or(0);
        difference |= std::hint::black_box(expected_byte ^ byte);
    }
    difference == 0
}

/// Addresses kicked from each room, with when their ban ends. Entries stay
/// after their room closes, so a kicked client cannot rejoin by waiting for
/// the room to empty and recreating it.
#[derive(Debug, Default)]
pub(crate) struct BanList {
    until: BTreeMap<(String, IpAddr), Instant>,
}

impl BanList {
    /// Bans `peer` from `room` until `until`, extending an earlier ban.
    pub fn ban(&mut self, room: &str, peer: IpAddr, until: Instant) {
        let end = self
            .until
            .entry((room.to_string(), ban_key(peer)))
            .or_insert(until);
        *end = (*end).max(until);
    }

    /// The time left on the ban of `peer` from `room`, if one is in force.
    pub fn remaining(&self, room: &str, peer: IpAddr, now: Instant) -> Option<Duration> {
        let until = *self.until.get(&(room.to_string(), ban_key(peer)))?;
        (until > now).then(|| until - now)
    }

    /// Drops every ban that has ended.
    pub fn prune(&mut self, now: Instant) {
        self.until.retain(|_, until| *until > now);
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.until.len()
    }
}

/// Returns whether a ban of `a` would also cover `b`.
pub(crate) fn same_ban_address(a: IpAddr, b: IpAddr) -> bool {
    ban_key(a) == ban_key(b)
}

/// The address a ban applies to: the IPv4 address, or the /64 prefix of an
/// IPv6 address, because one host usually controls a whole /64.
fn ban_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_comparison_cases() {
        assert!(password_matches("secret", "secret"));
        assert!(!password_matches("secret", "secreT"));
        assert!(!password_matches("secret", "secre"));
        assert!(!password_matches("secret", "secret1"));
        assert!(!password_matches("secret", ""));
        assert!(password_matches("", ""));
    }

    #[test]
    fn ban_covers_ipv6_prefix_and_mapped_ipv4() {
        let mut bans = BanList::default();
        let at = Instant::ZERO + Duration::from_secs(60);
        bans.ban("room", "2001:db8::1".parse().unwrap(), at);
        bans.ban("room", "192.0.2.7".parse().unwrap(), at);

        let same_prefix: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let other_prefix: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let other_v4: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(bans.remaining("room", same_prefix, Instant::ZERO).is_some());
        assert!(bans
            .remaining("room", other_prefix, Instant::ZERO)
            .is_none());
        assert!(bans.remaining("room", mapped, Instant::ZERO).is_some());
        assert!(bans.remaining("room", other_v4, Instant::ZERO).is_none());
        assert!(bans.remaining("other", mapped, Instant::ZERO).is_none());

        bans.prune(at);
        assert_eq!(bans.count(), 0);
    }
}
