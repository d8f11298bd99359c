//! Certificate files: a PEM chain (leaf first) and its private key
//! (PKCS#8, PKCS#1 RSA or SEC1 EC), read at `-t`, start and every reload.
//! Each failure says which file and why — unreadable, not PEM, a key that
//! does not match the certificate — and an expired leaf is a warning (as
//! nginx: it starts, clients refuse it). The expiry comes from the leaf's
//! `notAfter`, read with a small DER walk (RFC 5280 §4.1) with no I/O.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A loaded certificate with its key, and when the leaf expires.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// The leaf's notAfter, when it could be read.
    pub not_after: Option<SystemTime>,
}

/// Why a certificate or key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}` holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("`{path}` is not valid PEM: {reason}")]
    BadPem { path: String, reason: String },
    #[error("`{path}` holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey { path: String },
    #[error("`{path}`: unusable private key: {reason}")]
    BadKey { path: String, reason: String },
    #[error("the key in `{key}` does not match the certificate in `{cert}`")]
    Mismatch { cert: String, key: String },
    #[error("`{path}`: {reason}")]
    BadCertificate { path: String, reason: String },
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Every certificate in a PEM file, in order.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(path)?;
    let shown = || path.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadPem {
            path: shown(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate { path: shown() });
    }
    Ok(certs)
}

/// Load `cert` and `key` and check that they belong together.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded, CertError> {
    let chain = read_certs(cert)?;
    let key_bytes = read(key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => CertError::NoKey {
            path: key.display().to_string(),
        },
        e => CertError::BadPem {
            path: key.display().to_string(),
            reason: e.to_string(),
        },
    })?;
    let not_after = not_after(&chain[0]);
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| CertError::BadKey {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(CertError::Mismatch {
                cert: cert.display().to_string(),
                key: key.display().to_string(),
            })
        }
        Err(e) => {
            return Err(CertError::BadCertificate {
                path: cert.display().to_string(),
                reason: e.to_string(),
            })
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        not_after,
    })
}

/// A warning for a leaf that has expired, or `None`.
pub fn expiry_warning(not_after: Option<SystemTime>, now: SystemTime) -> Option<String> {
    let t = not_after?;
    (t < now).then(|| {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!(
            "the certificate expired at {} (clients will refuse it)",
            civil(secs)
        )
    })
}

/// The leaf's notAfter, from its DER.
pub fn not_after(cert: &[u8]) -> Option<SystemTime> {
    let (_, cert_body) = der(cert, 0x30)?;
    let (_, tbs) = der(cert_body, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der(rest, 0xa0)?.0; // [0] version
    }
    rest = der(rest, 0x02)?.0; // serialNumber
    rest = der(rest, 0x30)?.0; // signature
    rest = der(rest, 0x30)?.0; // issuer
    let (_, validity) = der(rest, 0x30)?;
    let (rest, _not_before) = any(validity)?;
    let (tag, not_after) = any_tagged(rest)?;
    let secs = match tag {
        0x17 => time(not_after, false)?,
        0x18 => time(not_after, true)?,
        _ => return None,
    };
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// One DER element of tag `tag` at the start of `b`: (what follows, its
/// contents).
fn der(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, contents, rest) = element(b)?;
    (t == tag).then_some((rest, contents))
}

fn any(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, contents, rest) = element(b)?;
    Some((rest, contents))
}

fn any_tagged(b: &[u8]) -> Option<(u8, &[u8])> {
    let (t, contents, _) = element(b)?;
    Some((t, contents))
}

/// (tag, contents, rest) of the element at the start of `b`.
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = len << 8 | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    if b.len() < end {
        return None;
    }
    Some((tag, &b[head..end], &b[end..]))
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950-2049) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, as seconds since the epoch.
fn time(s: &[u8], generalized: bool) -> Option<u64> {
    let digits = |b: &[u8]| -> Option<u64> {
        b.iter().try_fold(0u64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u64)
        })
    };
    let (year, rest) = if generalized {
        (digits(s.get(..4)?)?, s.get(4..)?)
    } else {
        let yy = digits(s.get(..2)?)?;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
    };
    if rest.len() != 11 || rest[10] != b'Z' {
        return None;
    }
    let (month, day) = (digits(&rest[0..2])?, digits(&rest[2..4])?);
    let (h, m, sec) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a log line.
fn civil(secs: u64) -> String {
    let (y, m, d) = crate::access_log::civil_date((secs / 86400) as i64);
    let s = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time(b"700101000000Z", false), Some(0));
        assert_eq!(time(b"491231235959Z", false), Some(2524607999));
        assert_eq!(time(b"20380119031408Z", true), Some(1 << 31));
        assert_eq!(time(b"20380119031408", true), None);
        assert_eq!(time(b"2038011903140xZ", true), None);
        assert_eq!(time(b"20381319031408Z", true), None);
        assert_eq!(civil(1 << 31), "2038-01-19 03:14:08 UTC");
        assert_eq!(civil(0), "1970-01-01 00:00:00 UTC");
    }

    /// A DER element with a short or long length.
    fn el(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if contents.len() < 128 {
            v.push(contents.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(contents);
        v
    }

    #[test]
    fn reads_not_after_from_a_certificate_shape() {
        let validity = [el(0x17, b"250101000000Z"), el(0x18, b"20300101000000Z")].concat();
        let tbs = [
            el(0xa0, &el(0x02, &[2])),
            el(0x02, &[1, 2, 3]),
            el(0x30, &el(0x06, &[1; 8])),
            el(0x30, &[0x55; 200]), // issuer, long length
            el(0x30, &validity),
            el(0x30, &[]), // subject ...
        ]
        .concat();
        let cert = el(
            0x30,
            &[el(0x30, &tbs), el(0x30, &[]), el(0x03, &[0])].concat(),
        );
        assert_eq!(
            not_after(&cert),
            Some(UNIX_EPOCH + Duration::from_secs(1893456000))
        );
        // Truncated anywhere: None, never a panic.
        for cut in 0..cert.len() {
            assert_eq!(not_after(&cert[..cut]), None, "cut {cut}");
        }
        let now = UNIX_EPOCH + Duration::from_secs(1893456001);
        assert!(expiry_warning(not_after(&cert), now)
            .unwrap()
            .contains("2030-01-01 00:00:00 UTC"));
        assert_eq!(expiry_warning(not_after(&cert), UNIX_EPOCH), None);
    }
}
