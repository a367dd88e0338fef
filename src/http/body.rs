//! The response body: empty, one buffer, an SSE byte stream, or bytes relayed from another node.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream};
use http_body::{Frame, SizeHint};

/// A response body. An enum rather than a boxed trait object: JSON replies, the hot path, cost no
/// allocation beyond their bytes.
pub enum Body {
    Empty,
    Full(Option<Bytes>),
    Stream(BoxStream<'static, Bytes>),
    /// Another node's answer, relayed (misroute rescue). An error breaks this response off: the
    /// connection closes without the body's proper end, so the client sees a broken response, as
    /// it would have from that node, never a short one that looks whole (the forwarder decides
    /// which answers may break off).
    Relayed(BoxStream<'static, Result<Bytes, RelayBroken>>),
}

/// The relayed answer broke off before its end (the other node closed or reset the connection).
#[derive(Debug, thiserror::Error)]
#[error("the relayed response broke off: {0}")]
pub struct RelayBroken(pub String);

impl Body {
    /// A body of these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = RelayBroken;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RelayBroken>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(s) => Pin::new(s)
                .poll_next(cx)
                .map(|o| o.map(|b| Ok(Frame::data(b)))),
            Body::Relayed(s) => Pin::new(s)
                .poll_next(cx)
                .map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Stream(_) | Body::Relayed(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) | Body::Relayed(_) => SizeHint::default(),
        }
    }
}
