//! The one trait an adapter implements: its framework, as the shared code reads it.

use crate::UserId;
use std::ops::Deref;

/// A web framework as the shared code of [`crate::web`] reads it: where a request keeps
/// its method, path, headers and the [`WiseUser`](super::WiseUser) extension. The
/// [`Plugin`](super::Plugin) itself comes from the framework's app state (axum: the router
/// state through `FromRef`, actix-web: app data), found by the adapter.
///
/// An adapter implements it on a type of its own (an empty enum) for its framework's
/// request type (axum: `http::request::Parts`, actix-web: `HttpRequest`). Everything else
/// is written once over it: who the user is ([`Plugin::user`](super::Plugin::user)), the request facts
/// ([`RequestInfo::of`](super::RequestInfo::of)), the token extraction and its rejection
/// ([`LinkedToken`](super::LinkedToken)) and the routes ([`Plugin::serve`](super::Plugin::serve)).
///
/// The associated types are the framework's own (the two frameworks use different versions
/// of the `http` types). Every function is a plain field or map lookup: none may allocate,
/// and each should be `#[inline]`, as the shared code that calls them is instantiated in
/// the app's crate.
pub trait Framework: Sized + 'static {
    /// The adapter's crate name, for logs and panics (e.g. `"wise-oauth-axum"`).
    const ADAPTER: &'static str;

    /// The framework's request (or request head) type, as extractors and resolvers see it.
    type Request;

    /// The framework's method type.
    type Method: AsRef<str>;

    /// The framework's path-and-query type.
    type PathAndQuery;

    /// The request method.
    fn method(req: &Self::Request) -> &Self::Method;

    /// The path and query the browser sent (before a nesting router stripped a prefix),
    /// so paths in redirects are the ones the browser saw.
    fn path_and_query(req: &Self::Request) -> Option<&Self::PathAndQuery>;

    /// The text of a path and query.
    fn path_and_query_str(pq: &Self::PathAndQuery) -> &str;

    /// Every header line, name and raw value (repeated names repeat).
    fn headers(req: &Self::Request) -> impl Iterator<Item = (&str, &[u8])>;

    /// How the framework lends the [`WiseUser`](super::WiseUser) extension's id: a
    /// reference where it lends extensions plainly (axum), a guard where it lends them
    /// behind one (actix-web's `Ref`), so that reading it clones nothing.
    type User<'r>: Deref<Target = UserId>;

    /// The id in the [`WiseUser`](super::WiseUser) request extension, if any.
    fn wise_user(req: &Self::Request) -> Option<Self::User<'_>>;
}
