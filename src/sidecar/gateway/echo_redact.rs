//! A routed host that echoes requests (debug endpoints, error pages quoting headers) would hand
//! the real token back to the agent. Responses from routed hosts have the token masked — in
//! headers and, streaming, in the body — with a mask of the same length, so `Content-Length`
//! stays true and no body is buffered: only a chunk's last bytes that could begin the token
//! wait for the next chunk.

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use hyper::HeaderMap;
use hyper::header::HeaderValue;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What replaces the token: `[REDACTED]` repeated, cut to the token's length.
pub(super) fn mask(len: usize) -> Vec<u8> {
    b"[REDACTED]".iter().copied().cycle().take(len).collect()
}

/// Replaces every occurrence of `secret` in `buf` with `mask` (same length); returns how many.
fn replace_all(buf: &mut [u8], secret: &[u8], mask: &[u8]) -> usize {
    if secret.is_empty() || buf.len() < secret.len() {
        return 0;
    }
    let mut hits = 0;
    let mut i = 0;
    while i + secret.len() <= buf.len() {
        if &buf[i..i + secret.len()] == secret {
            buf[i..i + secret.len()].copy_from_slice(mask);
            hits += 1;
            i += secret.len();
        } else {
            i += 1;
        }
    }
    hits
}

/// The length of the longest end of `buf` that is a beginning of `secret` (shorter than it).
fn partial_suffix(buf: &[u8], secret: &[u8]) -> usize {
    (1..secret.len().min(buf.len() + 1))
        .rev()
        .find(|&k| buf.ends_with(&secret[..k]))
        .unwrap_or(0)
}

/// Masks `secret` in every header value; returns how many values changed.
pub(super) fn headers(map: &mut HeaderMap, secret: &[u8]) -> usize {
    let m = mask(secret.len());
    let mut changed = 0;
    for value in map.values_mut() {
        let mut bytes = value.as_bytes().to_vec();
        if replace_all(&mut bytes, secret, &m) > 0 {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                *value = v;
                changed += 1;
            }
        }
    }
    changed
}

/// A response body with `secret` masked as it streams.
pub(super) struct Redacted<B> {
    inner: B,
    secret: Vec<u8>,
    mask: Vec<u8>,
    /// Bytes held back because they could begin the secret.
    held: BytesMut,
    /// A trailers frame that waits until `held` is out.
    trailers: Option<Frame<Bytes>>,
    done: bool,
    hits: usize,
    /// Told how many occurrences were masked (`hits` to start with, headers included) when
    /// the body is dropped.
    report: Option<Report>,
}

pub(super) type Report = Box<dyn FnOnce(usize) + Send + Sync + 'static>;

impl<B> Redacted<B> {
    pub(super) fn new(inner: B, secret: &[u8], hits: usize, report: Report) -> Self {
        Self {
            inner,
            secret: secret.to_vec(),
            mask: mask(secret.len()),
            held: BytesMut::new(),
            trailers: None,
            done: false,
            hits,
            report: Some(report),
        }
    }
}

impl<B> Drop for Redacted<B> {
    fn drop(&mut self) {
        if let Some(r) = self.report.take() {
            r(self.hits);
        }
    }
}

impl<B> HttpBody for Redacted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done || this.trailers.is_some() {
                if !this.held.is_empty() {
                    let rest = this.held.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
                if let Some(t) = this.trailers.take() {
                    return Poll::Ready(Some(Ok(t)));
                }
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.held.extend_from_slice(&data);
                        let n = replace_all(&mut this.held, &this.secret, &this.mask);
                        this.hits += n;
                        let keep = partial_suffix(&this.held, &this.secret);
                        let out = this.held.split_to(this.held.len() - keep).freeze();
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(mut frame) => {
                        if let Some(t) = frame.trailers_mut() {
                            this.hits += headers(t, &this.secret);
                        }
                        this.trailers = Some(frame);
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Same-length masking: the size is the inner body's.
        let mut hint = self.inner.size_hint();
        let held = self.held.len() as u64;
        hint.set_lower(hint.lower() + held);
        if let Some(u) = hint.upper() {
            hint.set_upper(u + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SECRET: &[u8] = b"sk-ant-oat01-REAL-SECRET";

    fn run(chunks: Vec<&'static [u8]>) -> (Vec<u8>, Vec<usize>, usize) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let inner = Chunks(chunks.into_iter().map(Bytes::from_static).collect());
            let hits = Arc::new(AtomicUsize::new(0));
            let seen = hits.clone();
            let report: Report = Box::new(move |n| seen.store(n, Ordering::Relaxed));
            let mut body = Redacted::new(inner, SECRET, 0, report);
            let mut out = Vec::new();
            let mut sizes = Vec::new();
            while let Some(f) = body.frame().await {
                let data = f.expect("frame").into_data().expect("data");
                sizes.push(data.len());
                out.extend_from_slice(&data);
            }
            drop(body);
            (out, sizes, hits.load(Ordering::Relaxed))
        })
    }

    /// A body of fixed chunks.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[test]
    fn the_token_is_masked_in_one_chunk_and_across_chunks_with_the_length_kept() {
        let (out, _, hits) = run(vec![b"Authorization: Bearer sk-ant-oat01-REAL-SECRET\n"]);
        let mut want = b"Authorization: Bearer ".to_vec();
        want.extend(mask(SECRET.len()));
        want.push(b'\n');
        assert_eq!(out, want);
        assert_eq!(hits, 1);
        assert_eq!(
            out.len(),
            b"Authorization: Bearer sk-ant-oat01-REAL-SECRET\n".len()
        );
        assert!(!out.windows(SECRET.len()).any(|w| w == SECRET));

        // Split at every position: never leaks, always the same length.
        let whole: &'static [u8] = b"x sk-ant-oat01-REAL-SECRET y sk-ant-oat01-REAL-SECRET";
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            let (out, _, hits) = run(vec![a, b]);
            assert_eq!(out.len(), whole.len(), "cut {cut}");
            assert_eq!(hits, 2, "cut {cut}");
            assert!(!out.windows(SECRET.len()).any(|w| w == SECRET), "cut {cut}");
        }
    }

    #[test]
    fn text_that_is_not_the_token_streams_through_at_once() {
        // A chunk that does not end in a beginning of the token is passed on whole (no delay
        // for server-sent events).
        let (out, sizes, hits) = run(vec![b"data: one\n\n", b"data: two\n\n"]);
        assert_eq!(out, b"data: one\n\ndata: two\n\n");
        assert_eq!(sizes, vec![11, 11]);
        assert_eq!(hits, 0);
        // One ending in "sk-" waits only for those three bytes.
        let (out, sizes, _) = run(vec![b"data: sk-", b"not it\n"]);
        assert_eq!(out, b"data: sk-not it\n");
        assert_eq!(sizes, vec![6, 10]);
    }

    #[test]
    fn header_values_are_masked() {
        let mut map = HeaderMap::new();
        map.insert(
            "x-echo",
            HeaderValue::from_static("Bearer sk-ant-oat01-REAL-SECRET"),
        );
        map.insert("content-type", HeaderValue::from_static("text/plain"));
        assert_eq!(headers(&mut map, SECRET), 1);
        let v = map.get("x-echo").expect("kept").to_str().expect("text");
        assert!(v.starts_with("Bearer [REDACTED]") && v.len() == 31, "{v}");
    }
}
