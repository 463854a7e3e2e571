//! The body type shared by every request and response that crosses the gate.
//!
//! Streamed bodies (hyper's `Incoming`, both ways) and the gate's own buffered bodies (a
//! validated manifest, an error document) are boxed into one type so the forwarding code has
//! a single signature.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Sleep;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Wraps bytes that are already in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes a streaming body, such as hyper's `Incoming`.
pub fn stream<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body whose bytes are counted and whose frames must keep coming: when no frame arrives
/// for `idle`, the body ends with a [`BodyIdleTimeout`] error. The whole transfer may take
/// as long as it needs.
pub struct MeteredBody<B> {
    inner: B,
    counter: Counter,
    idle: Duration,
    /// Time of the last frame. Frames only record it, and the timer is moved when it fires,
    /// so a fast transfer does not touch the timer once per frame.
    last_frame: tokio::time::Instant,
    deadline: Pin<Box<Sleep>>,
}

impl<B> MeteredBody<B> {
    pub fn new(inner: B, counter: Counter, idle: Duration) -> Self {
        Self {
            inner,
            counter,
            idle,
            last_frame: tokio::time::Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

/// The error a [`MeteredBody`] ends with when its peer stops sending.
#[derive(Debug, thiserror::Error)]
#[error("no body data for {0:?}")]
pub struct BodyIdleTimeout(pub Duration);

impl<B> http_body::Body for MeteredBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counter.inc_by(data.len() as u64);
                }
                this.last_frame = tokio::time::Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => loop {
                if this.deadline.as_mut().poll(context).is_pending() {
                    return Poll::Pending;
                }
                let due = this.last_frame + this.idle;
                if due <= tokio::time::Instant::now() {
                    return Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(this.idle)))));
                }
                // A frame came since the timer was set: move it and wait again.
                this.deadline.as_mut().reset(due);
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose peer must send its first byte before `deadline`; until then, a read
/// that would wait fails with `TimedOut`. It bounds connections that never send anything,
/// which HTTP servers only time out once a request has started.
pub struct FirstByteDeadline<I> {
    inner: I,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<I> FirstByteDeadline<I> {
    pub fn new(inner: I, within: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByteDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(context, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this
                .deadline
                .as_mut()
                .map(|deadline| deadline.as_mut().poll(context))
            {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client sent nothing before the header read timeout",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByteDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that reports when it has been sent: `sent` fires when the body ends or
/// is dropped, whichever comes first. An empty body may never be polled, so the drop counts.
pub struct EndSignal<B> {
    inner: B,
    sent: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<B> EndSignal<B> {
    pub fn new(inner: B, sent: tokio::sync::oneshot::Sender<()>) -> Self {
        Self {
            inner,
            sent: Some(sent),
        }
    }

    fn fire(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }
}

impl<B> Drop for EndSignal<B> {
    fn drop(&mut self) {
        self.fire();
    }
}

impl<B> http_body::Body for EndSignal<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        if let Poll::Ready(None) = polled {
            self.fire();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
