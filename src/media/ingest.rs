//! Receiving an upload's bytes: the type is sniffed from the first bytes (what the client
//! says is only compared with it), refusals come as soon as they are known — a type not
//! allowed before anything is stored, a size over the limit as the byte past it arrives —
//! and the SHA-256 is computed on the way to the store.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::MediaError;
use super::images;
use super::store::{MediaStore, Written};

/// Bytes read before the type is decided: enough for every signature `infer` knows and
/// for a text check that is not fooled by a short header.
const SNIFF_BYTES: usize = 8 * 1024;
/// Bytes of an image kept for reading its header (dimensions, EXIF orientation); a JPEG's
/// frame header follows its EXIF and ICC segments, each at most 64 KiB.
const PROBE_BYTES: usize = 512 * 1024;

/// What an upload must satisfy.
#[derive(Clone, Debug)]
pub struct UploadRules {
    /// Most bytes.
    pub max_bytes: u64,
    /// Accepted sniffed types: `type/subtype` or `type/*`.
    pub allowed: Vec<String>,
    /// Most pixels an image may declare.
    pub max_pixels: u64,
}

impl UploadRules {
    /// Whether a (sniffed or announced) type is accepted.
    pub fn allows(&self, mime: &str) -> bool {
        self.allowed
            .iter()
            .any(|pattern| match pattern.strip_suffix("/*") {
                Some(kind) => mime.split('/').next() == Some(kind),
                None => pattern == mime,
            })
    }
}

/// An upload's bytes, written to staging and measured.
pub struct Received {
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: u64,
    /// The sniffed type.
    pub mime_type: String,
    /// An image's size as displayed (EXIF orientation applied).
    pub dimensions: Option<(u32, u32)>,
    pub(crate) written: Written,
}

/// The type of these first bytes: a signature `infer` knows, else `text/plain` for UTF-8
/// without NUL, else `application/octet-stream`.
pub fn sniff(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut inside a character at the end of the prefix: still text.
        Err(e) => e.error_len().is_none(),
    };
    if text && !head.contains(&0) {
        "text/plain".to_owned()
    } else {
        "application/octet-stream".to_owned()
    }
}

/// A client-given media type without parameters, lowercase, with common aliases folded.
fn normalized(declared: &str) -> String {
    let media = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".to_owned(),
        "application/x-pdf" => "application/pdf".to_owned(),
        "application/x-zip-compressed" => "application/zip".to_owned(),
        _ => media,
    }
}

/// Whether what the client said fits the bytes. Saying nothing (or the generic
/// `application/octet-stream`) fits anything; plain text fits any textual type a client
/// may name it (it is stored and served as `text/plain` all the same).
fn fits(declared: Option<&str>, sniffed: &str) -> bool {
    let Some(declared) = declared.map(normalized).filter(|d| !d.is_empty()) else {
        return true;
    };
    declared == "application/octet-stream"
        || declared == sniffed
        || (sniffed == "text/plain"
            && (declared.starts_with("text/")
                || matches!(
                    declared.as_str(),
                    "application/json" | "application/x-ndjson"
                )))
}

/// Reads an upload's body into a staged object of `store`, checking it against `rules`
/// and what the client declared its type to be.
pub async fn receive<S, E>(
    store: &MediaStore,
    body: S,
    declared: Option<&str>,
    rules: &UploadRules,
) -> Result<Received, MediaError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut head = Vec::new();
    let mut ended = false;
    while head.len() < SNIFF_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => {
                head.extend_from_slice(&chunk);
                check_size(head.len() as u64, rules)?;
            }
            Some(Err(e)) => return Err(MediaError::Body(e.to_string())),
            None => {
                ended = true;
                break;
            }
        }
    }
    if head.is_empty() {
        return Err(MediaError::Body("the file is empty".into()));
    }
    let mime_type = sniff(&head);
    if !rules.allows(&mime_type) {
        return Err(MediaError::NotAllowed(mime_type));
    }
    if !fits(declared, &mime_type) {
        return Err(MediaError::Mismatch {
            declared: declared.map(normalized).unwrap_or_default(),
            sniffed: mime_type,
        });
    }
    let probing = images::is_decoded(&mime_type);
    let mut staged = store.stage().await?;
    let mut hash = Sha256::new();
    let mut size = head.len() as u64;
    hash.update(&head);
    staged.writer.write(&head);
    let mut probe = if probing { head } else { Vec::new() };
    let outcome: Result<(), MediaError> = async {
        while !ended {
            match body.next().await {
                Some(Ok(chunk)) => {
                    size += chunk.len() as u64;
                    check_size(size, rules)?;
                    hash.update(&chunk);
                    if probing && probe.len() < PROBE_BYTES {
                        let room = PROBE_BYTES - probe.len();
                        probe.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    // Bounded memory: at most a few parts in flight to the store.
                    staged.writer.wait_for_capacity(2).await?;
                    staged.writer.put(chunk);
                }
                Some(Err(e)) => return Err(MediaError::Body(e.to_string())),
                None => ended = true,
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        store.abandon(staged).await;
        return Err(e);
    }
    let dimensions = if probing {
        match images::displayed_size(&probe, &mime_type, rules.max_pixels) {
            Ok(found) => found,
            Err(e) => {
                store.abandon(staged).await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let written = store.finish(staged).await?;
    Ok(Received {
        sha256: hex(&hash.finalize()),
        size,
        mime_type,
        dimensions,
        written,
    })
}

fn check_size(size: u64, rules: &UploadRules) -> Result<(), MediaError> {
    if size > rules.max_bytes {
        return Err(MediaError::TooLarge {
            limit: rules.max_bytes,
        });
    }
    Ok(())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), "application/pdf");
        assert_eq!(sniff("plain text, ünïcode ✓".as_bytes()), "text/plain");
        // A prefix cut inside a multi-byte character is still text.
        assert_eq!(sniff(&"✓✓".as_bytes()[..4]), "text/plain");
        assert_eq!(sniff(b"text\0with a NUL"), "application/octet-stream");
        assert_eq!(sniff(b"<!DOCTYPE html><html><script>"), "text/html");
    }

    #[test]
    fn a_declared_type_must_fit_the_bytes() {
        assert!(fits(None, "image/png"));
        assert!(fits(Some("application/octet-stream"), "application/pdf"));
        assert!(fits(Some("IMAGE/JPG; q=1"), "image/jpeg"));
        assert!(fits(Some("text/csv"), "text/plain"));
        assert!(!fits(Some("image/png"), "application/pdf"));
        assert!(!fits(Some("image/png"), "text/plain"));
    }

    #[test]
    fn allowed_types_are_exact_or_a_whole_kind() {
        let rules = UploadRules {
            max_bytes: 1,
            allowed: vec!["image/png".into(), "video/*".into()],
            max_pixels: 1,
        };
        assert!(rules.allows("image/png"));
        assert!(rules.allows("video/mp4"));
        assert!(!rules.allows("image/gif"));
        assert!(!rules.allows("videos/mp4"));
    }
}
