//! [`ResponseFuture`]: the limiter's check, then the inner service's call
//! with the rate-limit fields added, or the layer's own answer. A state
//! machine, with no allocation of its own.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::sync::Arc;

use http::header::RETRY_AFTER;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use ratelimit_core::{AnyAlgorithm, Decision};
use tower_service::Service;

use crate::answer::sealed::Answer;
use crate::config::Responder;
use crate::headers;
use crate::limiter::LimitError;
use crate::observe::{Outcome, Probe};
use crate::refusal::{OnRefusal, Refusal};

pin_project! {
    /// The response future of [`RateLimit`](crate::RateLimit).
    pub struct ResponseFuture<S, B, F, R>
    where
        S: Service<Request<B>>,
        F: Future,
    {
        #[pin]
        state: State<S, B, F, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F, R>
    where
        S: Service<Request<B>>,
        F: Future,
    {
        /// The limiter is deciding.
        Checking {
            #[pin]
            check: F,
            probe: Probe,
            // The limiter's quota, for an answer that does not carry its own.
            quota: Option<AnyAlgorithm>,
            inner: Option<S>,
            request: Option<Request<B>>,
            // Moved on to `Calling` (not cloned: every request would
            // otherwise touch the count shared by all, twice more).
            responder: Option<Arc<Responder<R>>>,
        },
        /// The inner service is answering; its response gets the fields
        /// of the limiter's answer, if there was one.
        Calling {
            #[pin]
            future: S::Future,
            annotation: Option<(F::Output, Option<AnyAlgorithm>, Arc<Responder<R>>)>,
        },
        /// The layer has answered.
        Refused {
            response: Option<S::Response>,
        },
    }
}

impl<S, B, F, R> ResponseFuture<S, B, F, R>
where
    S: Service<Request<B>>,
    F: Future,
{
    pub(crate) fn checking(
        check: F,
        probe: Probe,
        quota: Option<AnyAlgorithm>,
        inner: S,
        request: Request<B>,
        responder: Arc<Responder<R>>,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                probe,
                quota,
                inner: Some(inner),
                request: Some(request),
                responder: Some(responder),
            },
        }
    }

    pub(crate) fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling {
                future,
                annotation: None,
            },
        }
    }

    pub(crate) fn refused(response: S::Response) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

impl<S, B, F, R> fmt::Debug for ResponseFuture<S, B, F, R>
where
    S: Service<Request<B>>,
    F: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Checking { .. } => "checking",
            State::Calling { .. } => "calling",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

impl<S, B, F, R, ResBody> Future for ResponseFuture<S, B, F, R>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    F: Future<Output: Answer>,
    R: OnRefusal<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Checking {
                    check,
                    probe,
                    quota,
                    inner,
                    request,
                    responder,
                } => {
                    let answer = ready!(probe.poll(check, cx));
                    let shared = responder.as_deref().expect(POLLED_AFTER_COMPLETION);
                    probe.finish(&shared.policy, answer.result());
                    let policy = &shared.policy;
                    let decision: Decision = match answer.result() {
                        Ok(decision) => *decision,
                        Err(error) => {
                            let mut headers = HeaderMap::new();
                            if let LimitError::InsufficientCapacity(_) = error {
                                answer.annotate(&mut headers, policy, quota.as_ref(), true);
                            }
                            let refused_by = answer.refused_by();
                            let error = answer.into_error().expect("the answer is an error");
                            let refusal = Refusal::for_error(policy.name(), error, headers)
                                .with_limits(refused_by);
                            return Poll::Ready(Ok(shared.refuse(refusal)));
                        }
                    };
                    if !decision.allowed {
                        let mut headers = HeaderMap::with_capacity(3);
                        if let Some(wait) = decision.retry_after {
                            headers.insert(RETRY_AFTER, headers::retry_after(wait));
                        }
                        answer.annotate(&mut headers, policy, quota.as_ref(), false);
                        let refusal = Refusal::for_denial(policy.name(), decision, headers)
                            .with_limits(answer.refused_by());
                        return Poll::Ready(Ok(shared.refuse(refusal)));
                    }
                    shared.count(Outcome::Allowed);
                    let responder = responder.take().expect(POLLED_AFTER_COMPLETION);
                    let mut inner = inner.take().expect(POLLED_AFTER_COMPLETION);
                    let request = request.take().expect(POLLED_AFTER_COMPLETION);
                    State::Calling {
                        future: inner.call(request),
                        annotation: Some((answer, *quota, responder)),
                    }
                }
                StateProj::Calling { future, annotation } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some((answer, quota, responder)) = annotation.take() {
                        answer.annotate(
                            response.headers_mut(),
                            &responder.policy,
                            quota.as_ref(),
                            false,
                        );
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Refused { response } => {
                    return Poll::Ready(Ok(response.take().expect(POLLED_AFTER_COMPLETION)));
                }
            };
            state.set(next);
        }
    }
}
