//! Translating between actix-web requests/responses and the framework-neutral web types.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use wise_oauth_core::web::{Reply, RequestInfo};

/// The request facts for the core, from the request head. actix-web keeps the full
/// original URI even inside a scope, so paths in redirects are the ones the browser saw.
pub(crate) fn request_info(req: &HttpRequest) -> RequestInfo {
    let uri = req.uri();
    let pq = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let mut info = RequestInfo::new(req.method().as_str(), pq);
    for (name, value) in req.headers() {
        info.header(name.as_str(), value.as_bytes());
    }
    info
}

/// The core's reply as an actix-web response, verbatim (actix-web uses its own `http`
/// types, so status and headers are copied by value).
pub(crate) fn response(reply: Reply) -> HttpResponse {
    let status =
        StatusCode::from_u16(reply.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            res.append_header((name, value));
        }
    }
    res.body(reply.body.into_bytes())
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody as _;
    use actix_web::test::TestRequest;
    use wise_oauth_core::web::Body;

    use super::*;

    #[test]
    fn reply_is_copied_verbatim_with_repeated_headers() {
        let reply = Reply {
            status: http::StatusCode::SEE_OTHER,
            headers: vec![
                (name("location"), value("/a?b=c")),
                (name("set-cookie"), value("a=1; Path=/")),
                (name("set-cookie"), value("b=2; Path=/")),
            ],
            body: Body::Json("{\"x\":1}".to_owned()),
        };
        let res = response(reply);
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookies: Vec<_> = res.headers().get_all("set-cookie").collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
        assert_eq!(res.headers().get("location").unwrap(), "/a?b=c");
        assert!(
            res.headers().get("content-type").is_none(),
            "only the core's headers"
        );
        let body = res.into_body().try_into_bytes().unwrap();
        assert_eq!(&body[..], b"{\"x\":1}");
    }

    #[test]
    fn request_info_keeps_the_raw_query_and_the_relevant_headers() {
        let req = TestRequest::post()
            .uri("/wise/disconnect?return_to=%2Fx&y=1")
            .insert_header(("accept", "text/html"))
            .insert_header(("x-user-id", "someone"))
            .insert_header(("cookie", "wise_oauth_binding=abc"))
            .to_http_request();
        let info = request_info(&req);
        assert_eq!(info.method(), "POST");
        assert_eq!(info.path(), "/wise/disconnect");
        assert_eq!(info.raw_query(), "return_to=%2Fx&y=1");
        assert!(info.is_browser());
        assert_eq!(info.cookie("wise_oauth_binding"), Some("abc"));
    }

    fn name(n: &'static str) -> http::HeaderName {
        http::HeaderName::from_static(n)
    }

    fn value(v: &'static str) -> http::HeaderValue {
        http::HeaderValue::from_static(v)
    }
}
