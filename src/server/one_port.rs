//! What the shared port serves: gRPC and HTTP told apart by content type (JSON calls use the
//! same paths as the gRPC methods), open or behind token auth, chosen once at start.
//!
//! A plain service, not an axum router with a fallback: the port's dispatch is one header
//! check and a call into the chosen router, with no route lookup or boxed future of its own
//! in front of every request (`bench/profile-unary` counted four router levels per call).
//! The Scheduler's gRPC calls, the one-job-per-call path, skip the gRPC router too: one
//! path-prefix check hands them to the Scheduler's service, as tonic's router would after
//! its route lookup (which is all that router adds: no layers sit on it). SubmitJob,
//! SubmitJobs and RunJob themselves are served by hand (`unary_calls.rs`) when plain. The
//! JSON face's Scheduler calls (a POST to the same paths) skip the HTTP router the same way
//! (`rpc_json::scheduler_past_router`, which does what the route and its body limit do),
//! unless the path is percent-encoded.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::routing::future::RouteFuture;
use axum::Router;
use futures_util::future::{BoxFuture, Either, MapOk};
use futures_util::{FutureExt, TryFutureExt};
use http::{Request, Response};
use hyper::body::Body as _;
use tower::Service;

use crate::auth::Auth;
use crate::http::{rpc_json, AppState};
use crate::net::ReqBody;
use crate::pb::scheduler_server::SchedulerServer;
use crate::rpc::scheduler::SchedulerService;

use super::unary_calls::UnaryCalls;

/// Whether `path` names one of the Scheduler's gRPC methods: `/taskhive.v1.Scheduler/…`.
fn is_scheduler_call(path: &str) -> bool {
    use tonic::server::NamedService;
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(SchedulerServer::<SchedulerService>::NAME))
        .is_some_and(|rest| rest.starts_with('/'))
}

/// gRPC or HTTP by the request's content type.
#[derive(Clone)]
pub struct OnePort {
    grpc: Router,
    scheduler: SchedulerServer<SchedulerService>,
    unary: UnaryCalls,
    json: AppState,
    http: Router,
}

impl OnePort {
    /// The port over the gRPC services' router, the Scheduler's service (also in that
    /// router), its unary one-job calls served by hand over the same service, the HTTP
    /// face's state (for its Scheduler calls) and its router.
    pub(super) fn new(
        grpc: Router,
        scheduler: SchedulerServer<SchedulerService>,
        unary: UnaryCalls,
        json: AppState,
        http: Router,
    ) -> Self {
        OnePort {
            grpc,
            scheduler,
            unary,
            json,
            http,
        }
    }
}

type TonicResponse = Response<tonic::body::Body>;

/// A Scheduler call's answer, its body turned into the port's.
type SchedulerFuture = MapOk<
    BoxFuture<'static, Result<TonicResponse, Infallible>>,
    fn(TonicResponse) -> Response<Body>,
>;

/// A unary call's answer when served by hand (a gRPC call's, or a JSON call's).
type UnaryFuture = BoxFuture<'static, Result<Response<Body>, Infallible>>;

impl Service<Request<ReqBody>> for OnePort {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Either<SchedulerFuture, UnaryFuture>, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !crate::status::is_grpc(&req) {
            // A body whose declared length is over the limit is refused before it is read:
            // its client, waiting on `expect: 100-continue`, need not send it at all.
            if req.body().size_hint().lower() > self.json.limits.message_limit() as u64 {
                let refused = rpc_json::over_the_size_limit();
                return Either::Left(Either::Right(Box::pin(std::future::ready(Ok(refused)))));
            }
            // A percent-encoded path goes to the router, whose path extractor decodes it;
            // clients send plain method names, which is all the direct path reads.
            let path = req.uri().path();
            if req.method() == http::Method::POST && is_scheduler_call(path) && !path.contains('%')
            {
                let json = rpc_json::scheduler_past_router(self.json.clone(), req);
                return Either::Left(Either::Right(Box::pin(json.map(Ok))));
            }
            return Either::Right(self.http.call(req));
        }
        if let Some(m) = UnaryCalls::takes(&req) {
            return Either::Left(Either::Right(Box::pin(self.unary.clone().call(m, req))));
        }
        if is_scheduler_call(req.uri().path()) {
            let to_port: fn(TonicResponse) -> Response<Body> = |r| r.map(Body::new);
            return Either::Left(Either::Left(self.scheduler.call(req).map_ok(to_port)));
        }
        Either::Right(self.grpc.call(req))
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

impl Service<Request<ReqBody>> for App {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<
        <OnePort as Service<Request<ReqBody>>>::Future,
        <Auth<OnePort> as Service<Request<ReqBody>>>::Future,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self {
            App::Open(port) => Either::Left(port.call(req)),
            App::Guarded(auth) => Either::Right(auth.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_scheduler_call;

    #[test]
    fn tells_the_schedulers_calls_by_path() {
        assert!(is_scheduler_call("/taskhive.v1.Scheduler/SubmitJob"));
        assert!(!is_scheduler_call("/taskhive.v1.SchedulerX/SubmitJob"));
        assert!(!is_scheduler_call("/taskhive.v1.LoadRunner/RunLoadJob"));
        assert!(!is_scheduler_call("/grpc.health.v1.Health/Check"));
    }
}
