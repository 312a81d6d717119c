//! What the shared port serves: gRPC and HTTP told apart by content type (JSON calls use the
//! same paths as the gRPC methods), open or behind token auth, chosen once at start.
//!
//! A plain service, not an axum router with a fallback: the port's dispatch is one header
//! check and a call into the chosen router, with no route lookup or boxed future of its own
//! in front of every request (`bench/profile-unary` counted four router levels per call).

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::routing::future::RouteFuture;
use axum::Router;
use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use tower::Service;

use crate::auth::Auth;

/// gRPC or HTTP by the request's content type.
#[derive(Clone)]
pub struct OnePort {
    grpc: Router,
    http: Router,
}

impl OnePort {
    /// The port over the gRPC services' router and the HTTP face's.
    pub fn new(grpc: Router, http: Router) -> Self {
        OnePort { grpc, http }
    }
}

impl Service<Request<Incoming>> for OnePort {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        if crate::status::is_grpc(&req) {
            self.grpc.call(req)
        } else {
            self.http.call(req)
        }
    }
}

/// The shared port's service: open, or every request checked against the tokens first.
#[derive(Clone)]
pub enum App {
    /// No `--auth`.
    Open(OnePort),
    /// `--auth FILE`: the token check wraps the whole port, so nothing is routed unchecked.
    Guarded(Auth<OnePort>),
}

impl Service<Request<Incoming>> for App {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        Either<RouteFuture<Infallible>, <Auth<OnePort> as Service<Request<Incoming>>>::Future>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        match self {
            App::Open(port) => Either::Left(port.call(req)),
            App::Guarded(auth) => Either::Right(auth.call(req)),
        }
    }
}
