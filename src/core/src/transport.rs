//! A connection before and after STARTTLS, as one type the stream code reads and writes: a
//! client's or another server's connection to hearth (TLS server side), or hearth's connection
//! to another server (TLS client side), or a client's stream carried over WebSocket or BOSH.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, SimplexStream, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A stream carried by another protocol (WebSocket, BOSH) over HTTPS.
    Pipe(Box<Pipe>),
}

/// The c2s end of a stream that arrives in pieces from a web binding: chunks of XML in, a byte
/// stream out. Both directions are bounded, so a slow side slows the other down.
pub struct Pipe {
    incoming: mpsc::Receiver<Bytes>,
    pending: Bytes,
    closed: bool,
    outgoing: WriteHalf<SimplexStream>,
}

/// The web binding's end of a [`Pipe`]: where it puts what the client sent, and where it
/// reads what hearth writes.
pub struct PipeEnds {
    pub to_stream: mpsc::Sender<Bytes>,
    pub from_stream: ReadHalf<SimplexStream>,
}

impl Pipe {
    pub fn new() -> (Pipe, PipeEnds) {
        let (tx, rx) = mpsc::channel(16);
        let (from_stream, outgoing) = tokio::io::simplex(64 * 1024);
        let pipe = Pipe {
            incoming: rx,
            pending: Bytes::new(),
            closed: false,
            outgoing,
        };
        let ends = PipeEnds {
            to_stream: tx,
            from_stream,
        };
        (pipe, ends)
    }

    /// Waits for the next chunk (or the end) without consuming it. Cancel-safe.
    async fn readable(&mut self) {
        if self.pending.is_empty() && !self.closed {
            match self.incoming.recv().await {
                Some(chunk) => self.pending = chunk,
                None => self.closed = true,
            }
        }
    }
}

impl Transport {
    /// Waits until a read would make progress, without holding a read buffer: idle connections
    /// then cost no buffer memory. With TLS, rustls may already hold decrypted data, in which
    /// case there is nothing to wait for.
    pub async fn readable(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Pipe(p) => {
                p.readable().await;
                Ok(())
            }
            Transport::Plain(s) => s.readable().await,
            Transport::Tls(s) if s.get_ref().1.wants_read() => s.get_ref().0.readable().await,
            Transport::Tls(_) => Ok(()),
            Transport::TlsClient(s) if s.get_ref().1.wants_read() => s.get_ref().0.readable().await,
            Transport::TlsClient(_) => Ok(()),
        }
    }

    pub fn tls(&self) -> Option<&rustls::ServerConnection> {
        match self {
            Transport::Tls(s) => Some(s.get_ref().1),
            _ => None,
        }
    }

    /// The certificate chain the other end presented in the TLS handshake, if any.
    pub fn peer_certificates(&self) -> Option<&[rustls_pki_types::CertificateDer<'static>]> {
        match self {
            Transport::Plain(_) | Transport::Pipe(_) => None,
            Transport::Tls(s) => s.get_ref().1.peer_certificates(),
            Transport::TlsClient(s) => s.get_ref().1.peer_certificates(),
        }
    }

    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Transport::Plain(_))
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::Pipe(p) => {
                if p.pending.is_empty() && !p.closed {
                    match p.incoming.poll_recv(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(chunk)) => p.pending = chunk,
                        Poll::Ready(None) => p.closed = true,
                    }
                }
                let n = p.pending.len().min(buf.remaining());
                buf.put_slice(&p.pending.split_to(n));
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Pipe(p) => Pin::new(&mut p.outgoing).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Pipe(p) => Pin::new(&mut p.outgoing).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Pipe(p) => Pin::new(&mut p.outgoing).poll_shutdown(cx),
        }
    }
}
