//! Revocation: a deny-list of certificate serial numbers ([`DenyList`]),
//! checked during every TLS handshake a transport makes or takes, so that
//! a revoked certificate cannot connect at all.
//!
//! The list is shared and swappable: every clone of a [`DenyList`] sees the
//! same serials, and [`DenyList::replace`] swaps them for all at once (a
//! daemon re-reading its list file while handshakes go on). The serials
//! are compared as unsigned integers, so `00:4a:3f` and `4A3F` are one.
//!
//! # File format
//!
//! [`DenyList::parse`] reads one serial a line, in hexadecimal (upper or
//! lower case, with or without `:` between bytes, with or without `0x`),
//! as `sim-cli certs --show` and `openssl x509 -serial` print them. A `#`
//! starts a comment, to the end of the line; blank lines are skipped:
//!
//! ```text
//! # alice's laptop, lost 2025-03-02
//! 5c1e0f2a9b...   # node 4's old key
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::pki_types::CertificateDer;

/// The most bytes a serial number may have (RFC 5280).
pub const MAX_SERIAL_BYTES: usize = 20;

/// A certificate serial number, as an unsigned big-endian integer without
/// leading zero bytes (zero itself is one zero byte). Displayed as lower-case
/// hex, two digits a byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// The serial of these big-endian bytes (a DER integer's content, say:
    /// a leading zero byte is dropped).
    pub fn from_bytes(bytes: &[u8]) -> Serial {
        let start = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        let mut kept = bytes.get(start..).unwrap_or_default().to_vec();
        if kept.is_empty() {
            kept.push(0);
        }
        Serial(kept)
    }

    /// The serial number of a DER certificate; `None` if it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Option<Serial> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        Some(Serial::from_bytes(parsed.raw_serial()))
    }

    /// The bytes, big-endian, without leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Serial {
    type Err = &'static str;

    /// Hex digits, with or without `:` between bytes and a `0x` prefix.
    fn from_str(text: &str) -> Result<Serial, &'static str> {
        let text = text.trim();
        let text = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let digits: String = text.chars().filter(|&c| c != ':').collect();
        if digits.is_empty() {
            return Err("no hex digits");
        }
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("not a hexadecimal serial number");
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes: Vec<u8> = padded
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let hex = std::str::from_utf8(pair).unwrap_or("00");
                u8::from_str_radix(hex, 16).unwrap_or(0)
            })
            .collect();
        let serial = Serial::from_bytes(&bytes);
        if serial.0.len() > MAX_SERIAL_BYTES {
            return Err("longer than 20 bytes (40 hex digits)");
        }
        Ok(serial)
    }
}

/// Why a deny-list could not be read. The list in use, if any, is
/// unchanged.
#[derive(Debug, thiserror::Error)]
pub enum DenyListError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A line is neither blank, a comment, nor a serial number.
    #[error("{}, line {line}: {text:?} is {reason}", path.display())]
    Line {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The line, without its comment.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[derive(Debug, Default)]
struct Inner {
    serials: RwLock<Arc<HashSet<Serial>>>,
    refused: AtomicU64,
    replaced: tokio::sync::Notify,
}

/// Serial numbers whose certificates are refused at the TLS handshake,
/// shared by every clone; see the [module documentation](self). Give it to
/// [`QuicTransportBuilder::revoked`](crate::QuicTransportBuilder::revoked)
/// (and to [`tls::https_server_config_with_revoked`](crate::tls::https_server_config_with_revoked)
/// for an HTTPS server), then [`replace`](Self::replace) its serials at will.
#[derive(Clone, Debug, Default)]
pub struct DenyList {
    inner: Arc<Inner>,
}

impl DenyList {
    /// An empty list: nothing is refused.
    pub fn new() -> DenyList {
        DenyList::default()
    }

    /// A list of `serials`.
    pub fn from_serials(serials: impl IntoIterator<Item = Serial>) -> DenyList {
        let list = DenyList::new();
        list.replace(serials);
        list
    }

    /// Swaps the serials for `serials`, for every clone at once; the
    /// handshakes from now on see the new list.
    pub fn replace(&self, serials: impl IntoIterator<Item = Serial>) {
        let set: HashSet<Serial> = serials.into_iter().collect();
        let mut slot = self
            .inner
            .serials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(set);
        drop(slot);
        self.inner.replaced.notify_waiters();
    }

    /// Completes at the next [`replace`](Self::replace) made after this call:
    /// what holders of open connections wait on, to close those whose
    /// certificate was revoked meanwhile.
    pub fn replaced(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.replaced.notified()
    }

    fn current(&self) -> Arc<HashSet<Serial>> {
        Arc::clone(
            &self
                .inner
                .serials
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// How many serials the list holds.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// Whether `serial` is listed.
    pub fn contains(&self, serial: &Serial) -> bool {
        self.current().contains(serial)
    }

    /// The first certificate of `chain` whose serial is listed.
    pub fn revoked_in(&self, chain: &[CertificateDer<'_>]) -> Option<Serial> {
        let serials = self.current();
        if serials.is_empty() {
            return None;
        }
        chain
            .iter()
            .filter_map(Serial::of)
            .find(|serial| serials.contains(serial))
    }

    /// How many handshakes were refused because a certificate was listed,
    /// by every user of the list since it was made.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Refuses a chain with a listed certificate, counting the refusal.
    pub(crate) fn check(&self, chain: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        match self.revoked_in(chain) {
            None => Ok(()),
            Some(serial) => {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%serial, "refused a revoked certificate at the handshake");
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Revoked,
                ))
            }
        }
    }

    /// The serials of a deny-list text (see the [module
    /// documentation](self)).
    ///
    /// # Errors
    /// [`DenyListError::Line`] for the first malformed line, naming it.
    pub fn parse(text: &str) -> Result<Vec<Serial>, DenyListError> {
        parse_lines(text, Path::new("<memory>"))
    }

    /// The serials in the deny-list file at `path`.
    ///
    /// # Errors
    /// [`DenyListError::Io`], or [`DenyListError::Line`] for the first
    /// malformed line.
    pub fn read_file(path: &Path) -> Result<Vec<Serial>, DenyListError> {
        let text = std::fs::read_to_string(path).map_err(|source| DenyListError::Io {
            path: path.to_owned(),
            source,
        })?;
        parse_lines(&text, path)
    }
}

fn parse_lines(text: &str, path: &Path) -> Result<Vec<Serial>, DenyListError> {
    let mut serials = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let serial = content.parse().map_err(|reason| DenyListError::Line {
            path: path.to_owned(),
            line: index + 1,
            text: content.to_owned(),
            reason,
        })?;
        serials.push(serial);
    }
    Ok(serials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_parse_in_every_usual_spelling_and_compare_as_numbers() {
        let plain: Serial = "4a3f".parse().unwrap();
        for same in ["4A3F", "0x4a3f", "00:4a:3f", "  004A3F ", "a3f0"] {
            let parsed: Serial = same.parse().unwrap();
            assert_eq!(parsed == plain, same != "a3f0", "{same}");
        }
        assert_eq!("abc".parse::<Serial>().unwrap().as_bytes(), [0x0a, 0xbc]);
        assert_eq!(plain.to_string(), "4a3f");
        assert_eq!(Serial::from_bytes(&[0, 0]).to_string(), "00");
        assert!("".parse::<Serial>().is_err());
        assert!("4g".parse::<Serial>().is_err());
        assert!("ab".repeat(21).parse::<Serial>().is_err());
        assert!("ab".repeat(20).parse::<Serial>().is_ok());
    }

    #[test]
    fn a_list_file_takes_comments_and_blank_lines_and_names_a_bad_line() {
        let text = "# revoked\n\n4a3f  # alice\n  00:01  \n";
        let serials = DenyList::parse(text).unwrap();
        assert_eq!(
            serials,
            ["4a3f".parse::<Serial>().unwrap(), "01".parse().unwrap()]
        );
        let bad = DenyList::parse("4a3f\n# fine\nnot-hex # why\n").unwrap_err();
        match &bad {
            DenyListError::Line { line, text, .. } => {
                assert_eq!((*line, text.as_str()), (3, "not-hex"));
            }
            other => panic!("{other:?}"),
        }
        assert!(bad.to_string().contains("line 3"), "{bad}");
    }

    #[test]
    fn clones_share_one_list_and_replacing_swaps_it() {
        let list = DenyList::new();
        let clone = list.clone();
        let serial: Serial = "77".parse().unwrap();
        assert!(!clone.contains(&serial));
        list.replace([serial.clone()]);
        assert!(clone.contains(&serial));
        assert_eq!(clone.len(), 1);
        list.replace([]);
        assert!(clone.is_empty());
    }
}
