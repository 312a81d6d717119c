//! A request's body as the app reads it, telling the connection whether it was read to its
//! end.
//!
//! An HTTP/1 connection can carry the next request only once this one's body has been read
//! off the socket. When an answer comes before that (a 404, 401 or 429 to an upload, a 413
//! part-way through one), hyper drains what has already arrived and otherwise closes the
//! connection; but it writes the answer's head before it finds out, so the head does not say
//! `connection: close`, and a client puts the connection back in its pool and loses its next
//! request on it. The connection asks [`BodyRead`] instead, when the answer is ready.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// One connection's record of whether its current HTTP/1 request's body was read to its end.
/// One per connection is enough: HTTP/1 reads the next request only after this one's answer.
#[derive(Clone, Default)]
pub(crate) struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    /// Starts watching `body`, a new HTTP/1 request's: read already when it is empty.
    pub(crate) fn watch(&self, body: Incoming) -> ReqBody {
        self.0.store(body.is_end_stream(), Ordering::Relaxed);
        ReqBody {
            inner: body,
            read: Some(self.clone()),
        }
    }

    /// Whether the request's body was read to its end.
    pub(crate) fn done(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The request body every face of the shared port reads (hyper's, watched on HTTP/1).
pub struct ReqBody {
    inner: Incoming,
    read: Option<BodyRead>,
}

impl ReqBody {
    /// A body nobody needs to watch (HTTP/2, whose streams end on their own).
    pub(crate) fn unwatched(body: Incoming) -> ReqBody {
        ReqBody {
            inner: body,
            read: None,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(read) = &self.read {
            // A reader may stop at the last frame without asking for the end (a length it
            // knew).
            let ended = match &frame {
                None => true,
                Some(Ok(_)) => self.inner.is_end_stream(),
                Some(Err(_)) => false,
            };
            if ended {
                read.0.store(true, Ordering::Relaxed);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
