//! The bytes of attachments: one store for them (the local filesystem or S3-compatible
//! object storage, chosen by URL), what an upload's bytes are (type sniffed from them,
//! size and pixels bounded, SHA-256 computed on the way in), thumbnails, and signed URLs.
//! Nothing here knows chats or members: who may upload or fetch what is
//! `domain::attachments`.

pub mod images;
pub mod ingest;
pub mod signing;
mod store;

pub use store::{BlobRead, MediaStore, Staged};

/// What the server holds for attachments: the store, the URL signer, and the permit for
/// thumbnailing (one image decoded at a time: decoding is CPU and memory heavy, and the
/// request path must keep its cores).
pub struct Media {
    pub store: MediaStore,
    pub signer: signing::UrlSigner,
    pub thumbnailing: tokio::sync::Semaphore,
}

impl Media {
    /// The parts together.
    pub fn new(store: MediaStore, signer: signing::UrlSigner) -> Self {
        Self {
            store,
            signer,
            thumbnailing: tokio::sync::Semaphore::new(1),
        }
    }
}

/// Why an upload's bytes were refused or could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// More bytes than the limit (counted as they arrive: nothing past it is read).
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The sniffed type is not on the allowed list.
    #[error("files of type {0} are not accepted")]
    NotAllowed(String),
    /// The client said one type and the bytes are another.
    #[error("the file was sent as {declared} but its bytes are {sniffed}")]
    Mismatch { declared: String, sniffed: String },
    /// An image whose header declares more pixels than may be decoded (a decompression
    /// bomb, or just too big to thumbnail).
    #[error("the image is {width}×{height} pixels; at most {max} pixels are accepted")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    /// An image type whose bytes do not decode.
    #[error("the {mime} image cannot be read: {reason}")]
    Unreadable { mime: String, reason: String },
    /// The request body ended or failed before the file did.
    #[error("the upload did not complete: {0}")]
    Body(String),
    /// A two-step upload's bytes are not the size announced for them.
    #[error("{received} bytes arrived, but the upload was announced as {declared} bytes")]
    SizeMismatch { declared: u64, received: u64 },
    /// The store failed; the detail is logged, never shown.
    #[error("media store: {0}")]
    Store(#[from] object_store::Error),
    /// Thumbnailing took longer than allowed or its worker failed.
    #[error("thumbnail: {0}")]
    Worker(String),
}
