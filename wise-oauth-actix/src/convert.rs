//! The core's reply as an actix-web response.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use wise_oauth_core::web::Reply;

/// The core's reply as an actix-web response, verbatim (actix-web uses its own `http`
/// types, so status and headers are copied by value).
pub(crate) fn response(reply: Reply) -> HttpResponse {
    let mut res = HttpResponse::build(status(reply.status.as_u16()));
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

/// A status code of the core as actix-web's.
pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody as _;
    use actix_web::test::TestRequest;
    use wise_oauth_core::web::{Body, RequestInfo};

    use super::*;
    use crate::framework::Actix;

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
        let info = RequestInfo::of::<Actix>(&req);
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
