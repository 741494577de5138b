//! The ovirt-imageio data plane (section 8 of the API page) as `ovrun` uses it: a ticket's
//! extents (`zero` or `dirty` context), ranged reads, writes, zeroing and flushing, all over TLS
//! verified with the engine's CA.

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// What can go wrong on the data plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageioError {
    /// No answer, or the connection broke mid-transfer (the cause in plain words).
    #[error("{what} {url}: {}", super::transport::cause(source, url))]
    Transport {
        /// What was being done.
        what: &'static str,
        /// The ticket URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The daemon refused.
    #[error("{what} {url}: {status} {body}")]
    Status {
        /// What was being done.
        what: &'static str,
        /// The ticket URL.
        url: String,
        /// Its status.
        status: StatusCode,
        /// Its explanation.
        body: String,
    },
    /// A read returned fewer bytes than asked.
    #[error("reading {url} at {offset}: {got} of {wanted} bytes")]
    Short {
        /// The ticket URL.
        url: String,
        /// Where.
        offset: u64,
        /// Bytes asked for.
        wanted: u64,
        /// Bytes received.
        got: u64,
    },
}

/// One extent of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Extent {
    /// Offset.
    pub start: u64,
    /// Length.
    pub length: u64,
    /// Reads as zero.
    #[serde(default)]
    pub zero: bool,
    /// Changed since the backup's checkpoint (only in the `dirty` context).
    #[serde(default)]
    pub dirty: bool,
    /// Not held by the exported volume itself (`zero` context, qcow2 exports with allocation
    /// depth): in a `shallow` transfer, a block the layer did not write.
    #[serde(default)]
    pub hole: bool,
}

/// A ticket's URL and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Ticket {
    http: reqwest::Client,
    url: String,
}

impl Ticket {
    /// The ticket at `url` (a transfer's `transfer_url`).
    pub fn new(http: reqwest::Client, url: &str) -> Self {
        Self {
            http,
            url: url.to_owned(),
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn check(
        &self,
        what: &'static str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, ImageioError> {
        let response = sent.map_err(|source| ImageioError::Transport {
            what,
            url: self.url.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(ImageioError::Status {
            what,
            url: self.url.clone(),
            status,
            body: body.trim().chars().take(300).collect(),
        })
    }

    /// The extents in `context` (`zero`, or `dirty` during an incremental backup).
    ///
    /// # Errors
    /// The daemon refuses or does not answer.
    pub async fn extents(&self, context: &str) -> Result<Vec<Extent>, ImageioError> {
        let url = format!("{}/extents?context={context}", self.url);
        let sent = self.http.get(url).send().await;
        let response = self.check("extents", sent).await?;
        response
            .json()
            .await
            .map_err(|source| ImageioError::Transport {
                what: "extents",
                url: self.url.clone(),
                source,
            })
    }

    /// Reads `[offset, offset + length)`, handing each piece to `sink` as it arrives (no
    /// buffering of the whole range).
    ///
    /// # Errors
    /// The daemon refuses, the connection breaks, or fewer bytes arrive.
    pub async fn read(
        &self,
        offset: u64,
        length: u64,
        mut sink: impl FnMut(u64, Bytes) -> std::io::Result<()>,
    ) -> Result<(), ImageioError> {
        let range = format!("bytes={offset}-{}", offset + length - 1);
        let sent = self.http.get(&self.url).header("Range", range).send().await;
        let response = self.check("reading", sent).await?;
        let mut stream = response.bytes_stream();
        let mut at = offset;
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|source| ImageioError::Transport {
                what: "reading",
                url: self.url.clone(),
                source,
            })?;
            let len = piece.len() as u64;
            sink(at, piece).map_err(|e| ImageioError::Status {
                what: "storing",
                url: self.url.clone(),
                status: StatusCode::INSUFFICIENT_STORAGE,
                body: e.to_string(),
            })?;
            at += len;
        }
        if at != offset + length {
            return Err(ImageioError::Short {
                url: self.url.clone(),
                offset,
                wanted: length,
                got: at - offset,
            });
        }
        Ok(())
    }

    /// Writes `data` at `offset`, without flushing.
    ///
    /// # Errors
    /// The daemon refuses or does not answer.
    pub async fn write(&self, offset: u64, data: Bytes) -> Result<(), ImageioError> {
        let end = offset + data.len() as u64 - 1;
        let sent = self
            .http
            .put(format!("{}?flush=n", self.url))
            .header("Content-Range", format!("bytes {offset}-{end}/*"))
            .body(data)
            .send()
            .await;
        self.check("writing", sent).await.map(|_| ())
    }

    /// Zeroes `[offset, offset + length)`, without flushing.
    ///
    /// # Errors
    /// The daemon refuses or does not answer.
    pub async fn zero(&self, offset: u64, length: u64) -> Result<(), ImageioError> {
        let body = json!({"op": "zero", "offset": offset, "size": length, "flush": false});
        let sent = self.http.patch(&self.url).json(&body).send().await;
        self.check("zeroing", sent).await.map(|_| ())
    }

    /// The image's content checksum as the daemon computes it (`GET .../checksum`): `algorithm`
    /// in blocks of `block_size` (see [`super::blocksum`]).
    ///
    /// # Errors
    /// The daemon refuses or does not answer.
    pub async fn checksum(&self, algorithm: &str, block_size: u64) -> Result<String, ImageioError> {
        #[derive(Deserialize)]
        struct Answer {
            checksum: String,
        }
        let url = format!(
            "{}/checksum?algorithm={algorithm}&block_size={block_size}",
            self.url
        );
        let sent = self.http.get(url).send().await;
        let response = self.check("checksum", sent).await?;
        let answer: Answer = response
            .json()
            .await
            .map_err(|source| ImageioError::Transport {
                what: "checksum",
                url: self.url.clone(),
                source,
            })?;
        Ok(answer.checksum)
    }

    /// Flushes what was written to storage.
    ///
    /// # Errors
    /// The daemon refuses or does not answer.
    pub async fn flush(&self) -> Result<(), ImageioError> {
        let sent = self
            .http
            .patch(&self.url)
            .json(&json!({"op": "flush"}))
            .send()
            .await;
        self.check("flushing", sent).await.map(|_| ())
    }
}

/// Splits the extents that must be read into requests of at most `chunk` bytes.
pub fn chunks(extents: &[Extent], chunk: u64) -> Vec<(u64, u64)> {
    extents
        .iter()
        .flat_map(|e| {
            let end = e.start + e.length;
            (e.start..end)
                .step_by(usize::try_from(chunk).unwrap_or(usize::MAX))
                .map(move |at| (at, chunk.min(end - at)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_split_into_bounded_requests() {
        let e = |start, length| Extent {
            start,
            length,
            zero: false,
            dirty: true,
            hole: false,
        };
        assert_eq!(
            chunks(&[e(0, 10), e(20, 4)], 4),
            vec![(0, 4), (4, 4), (8, 2), (20, 4)]
        );
    }
}
