//! What a token keeps of its request for a later rejection.

use super::framework::Framework;
use super::request::RequestInfo;

/// The request facts a rejection decides on (method, path and query, `Accept`,
/// `X-Requested-With`), kept as reference-counted clones of the request's own values (no
/// copy, no header map) and turned into a [`RequestInfo`] only when a rejection needs it.
pub(crate) struct RequestHead<F: Framework> {
    method: F::Method,
    path: Option<F::PathAndQuery>,
    /// The `Accept` header (several are joined with `,`: they form one list).
    accept: Option<F::HeaderValue>,
    requested_with: bool,
}

impl<F: Framework> Clone for RequestHead<F> {
    fn clone(&self) -> Self {
        RequestHead {
            method: self.method.clone(),
            path: self.path.clone(),
            accept: self.accept.clone(),
            requested_with: self.requested_with,
        }
    }
}

impl<F: Framework> RequestHead<F> {
    pub(crate) fn of(req: &F::Request) -> Self {
        RequestHead {
            method: F::method(req).clone(),
            path: F::path_and_query(req).cloned(),
            accept: joined::<F>(F::accept(req)),
            requested_with: F::has_x_requested_with(req),
        }
    }

    pub(crate) fn info(&self) -> RequestInfo {
        let pq = self.path.as_ref().map_or("/", F::path_and_query_str);
        let mut info = RequestInfo::new(self.method.as_ref(), pq);
        if let Some(accept) = &self.accept {
            info.header("accept", accept.as_ref());
        }
        if self.requested_with {
            info.header("x-requested-with", b"1");
        }
        info
    }
}

/// One value for a list header: the value itself when sent once (a clone, no copy), the
/// values joined with `,` when sent several times.
fn joined<'a, F: Framework>(
    mut values: impl Iterator<Item = &'a F::HeaderValue>,
) -> Option<F::HeaderValue> {
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_ref().to_vec();
    for value in std::iter::once(second).chain(values) {
        joined.push(b',');
        joined.extend_from_slice(value.as_ref());
    }
    F::HeaderValue::try_from(joined.as_slice()).ok()
}
