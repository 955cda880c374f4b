//! Which clients may use which export: `--allow EXPORT=MAC[,ro]` rules,
//! as `vblade -m` and nbd-server's authfile offer. An export without rules
//! serves every client; an export with rules serves only the clients they
//! list, each read-write or read-only.

use std::{collections::HashMap, str::FromStr};

/// One `--allow` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// Export number.
    pub export: u16,
    /// The client's MAC address.
    pub client: [u8; 6],
    /// The client may only read.
    pub read_only: bool,
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-` between the bytes).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next().ok_or_else(|| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
        if p.len() != 2 {
            return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
    }
    if parts.next().is_some() {
        return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    Ok(mac)
}

impl FromStr for AllowRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (export, rest) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected EXPORT=MAC[,ro]"))?;
        let export = export.parse().map_err(|_| format!("{export:?} is not an export number"))?;
        let (mac, read_only) = match rest.split_once(',') {
            Some((mac, "ro")) => (mac, true),
            Some((mac, "rw")) => (mac, false),
            Some((_, other)) => return Err(format!("unknown client option {other:?} (expected ro or rw)")),
            None => (rest, false),
        };
        let client = parse_mac(mac)?;
        // Frames from such addresses are dropped before access is checked
        // (a client cannot send from them), so a rule naming one is a mistake.
        if client[0] & 1 != 0 || client == [0; 6] {
            return Err(format!("{mac} is a group or all-zero address, never a client's"));
        }
        Ok(AllowRule { export, client, read_only })
    }
}

/// What a client may do with an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Nothing: every request, Info included, is answered `Denied`.
    Denied,
    /// Read and Info; writes, discards and write-zeroes are answered
    /// `ReadOnly` and Info reports the export read-only.
    ReadOnly,
    /// Whatever the export allows.
    ReadWrite,
}

/// Why the rules are refused at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// A rule names an export the server does not have.
    #[error("--allow {export}=...: there is no export {export} (exports are numbered from 0 in -e order)")]
    NoSuchExport {
        /// The rule's export.
        export: u16,
    },
    /// Two rules name the same client for the same export.
    #[error("--allow: client {client} is listed twice for export {export}")]
    Duplicate {
        /// The export.
        export: u16,
        /// The client, as written.
        client: String,
    },
}

/// The rules of every export.
#[derive(Debug, Default)]
pub struct Access {
    /// Per export: `None` serves everyone; otherwise each listed client and
    /// whether it is read-only.
    exports: Vec<Option<HashMap<[u8; 6], bool>>>,
}

impl Access {
    /// The rules for a server with `exports` exports.
    pub fn new(rules: &[AllowRule], exports: usize) -> Result<Self, AccessError> {
        let mut per_export: Vec<Option<HashMap<[u8; 6], bool>>> = vec![None; exports];
        for r in rules {
            let slot = per_export.get_mut(usize::from(r.export)).ok_or(AccessError::NoSuchExport { export: r.export })?;
            if slot.get_or_insert_with(HashMap::new).insert(r.client, r.read_only).is_some() {
                return Err(AccessError::Duplicate {
                    export: r.export,
                    client: crate::notice::mac_string(&r.client),
                });
            }
        }
        Ok(Access { exports: per_export })
    }

    /// What `client` may do with `export`.
    pub fn grant(&self, export: u16, client: &[u8; 6]) -> Grant {
        match self.exports.get(usize::from(export)) {
            Some(Some(allowed)) => match allowed.get(client) {
                Some(true) => Grant::ReadOnly,
                Some(false) => Grant::ReadWrite,
                None => Grant::Denied,
            },
            _ => Grant::ReadWrite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn rules_parse_and_refuse_nonsense() {
        assert_eq!(
            "1=02:00:00:00:00:0a,ro".parse(),
            Ok(AllowRule { export: 1, client: A, read_only: true })
        );
        assert_eq!("0=02-00-00-00-00-0B".parse(), Ok(AllowRule { export: 0, client: B, read_only: false }));
        assert_eq!("0=02:00:00:00:00:0b,rw".parse::<AllowRule>().map(|r| r.read_only), Ok(false));
        for bad in [
            "02:00:00:00:00:0a",
            "x=02:00:00:00:00:0a",
            "0=02:00:00:00:00",
            "0=02:00:00:00:00:0a:00",
            "0=02:00:00:00:00:0g",
            "0=02:00:00:00:00:0a,wo",
            "0=ff:ff:ff:ff:ff:ff",
            "0=01:00:5e:00:00:01",
            "0=00:00:00:00:00:00",
            "70000=02:00:00:00:00:0a",
        ] {
            assert!(bad.parse::<AllowRule>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn listed_exports_serve_only_their_clients() {
        let rules = [
            AllowRule { export: 1, client: A, read_only: false },
            AllowRule { export: 1, client: B, read_only: true },
        ];
        let access = Access::new(&rules, 3).unwrap();
        assert_eq!(access.grant(0, &A), Grant::ReadWrite, "export 0 has no rules");
        assert_eq!(access.grant(1, &A), Grant::ReadWrite);
        assert_eq!(access.grant(1, &B), Grant::ReadOnly);
        assert_eq!(access.grant(1, &[2, 0, 0, 0, 0, 0xc]), Grant::Denied);
    }

    #[test]
    fn rules_for_missing_exports_or_twice_are_refused() {
        let r = AllowRule { export: 2, client: A, read_only: false };
        assert_eq!(Access::new(&[r], 2).unwrap_err(), AccessError::NoSuchExport { export: 2 });
        let r = AllowRule { export: 0, ..r };
        assert!(matches!(Access::new(&[r, r], 1), Err(AccessError::Duplicate { export: 0, .. })));
    }
}
