//! The strict parser of Wise's redirect back to the app.
//!
//! It reads the RAW (still percent-encoded) query string, because the frameworks' decoders
//! are lossy (invalid UTF-8 becomes U+FFFD, duplicates are silently merged).

use crate::ids::ProfileId;
use crate::secret::{AuthorizationCode, CsrfState};

use super::error::{CallbackProblem, FlowError, ProviderErrorCode};

/// The longest raw query accepted, in bytes.
pub(crate) const MAX_QUERY_LEN: usize = 4096;
/// The longest decoded parameter value accepted, in bytes.
pub(crate) const MAX_VALUE_LEN: usize = 512;
/// The longest decoded parameter name accepted, in bytes.
const MAX_NAME_LEN: usize = 64;

/// Parameters of the implicit or hybrid flows: never legitimate on a code-flow callback.
const IMPLICIT_PARAMS: &[&str] = &[
    "access_token",
    "id_token",
    "token",
    "token_type",
    "refresh_token",
];

/// What Wise sent back.
#[derive(Debug)]
pub(crate) enum CallbackOutcome {
    /// The user approved.
    Code {
        code: AuthorizationCode,
        /// The `profileId` hint (verified through the API later).
        profile_id: Option<ProfileId>,
    },
    /// The user declined (`error=access_denied`).
    Denied,
    /// Any other error.
    Error(ProviderErrorCode),
}

/// A parsed callback.
#[derive(Debug)]
pub(crate) struct Callback {
    pub(crate) state: CsrfState,
    pub(crate) outcome: CallbackOutcome,
}

/// A parse failure, with the `state` when one could be read unambiguously, so that the
/// caller can still consume it.
#[derive(Debug)]
pub(crate) struct ParseFailure {
    pub(crate) error: FlowError,
    pub(crate) state: Option<CsrfState>,
}

/// Strict percent-decoding: every `%` must be followed by two hex digits; with
/// `plus_as_space` a `+` is a space (form encoding). Returns raw bytes (maybe not UTF-8).
pub(crate) fn percent_decode(input: &str, plus_as_space: bool) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_component(raw: &str, limit: usize) -> Result<String, CallbackProblem> {
    // Every encoded byte takes at most 3 raw bytes; reject early before allocating.
    if raw.len() > limit * 3 {
        return Err(CallbackProblem::Oversized);
    }
    let bytes = percent_decode(raw, true).ok_or(CallbackProblem::InvalidEncoding)?;
    if bytes.len() > limit {
        return Err(CallbackProblem::Oversized);
    }
    let text = String::from_utf8(bytes).map_err(|_| CallbackProblem::InvalidEncoding)?;
    if text.chars().any(char::is_control) {
        return Err(CallbackProblem::ControlCharacter);
    }
    Ok(text)
}

/// Which known parameter a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Code,
    State,
    ProfileId,
    Error,
    ErrorDescription,
    ErrorUri,
    Iss,
}

fn classify(name: &str) -> Option<Known> {
    Some(match name {
        "code" => Known::Code,
        "state" => Known::State,
        "error" => Known::Error,
        "error_description" => Known::ErrorDescription,
        "error_uri" => Known::ErrorUri,
        "iss" => Known::Iss,
        // Wise writes `profileId`; one page writes `profileID`: read it case-insensitively.
        n if n.eq_ignore_ascii_case("profileid") => Known::ProfileId,
        _ => return None,
    })
}

/// Whether a code looks like one: printable ASCII without space, at most [`MAX_VALUE_LEN`].
fn is_plausible_code(code: &str) -> bool {
    !code.is_empty() && code.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses the raw query of the callback request. `allowed_issuers` are the origins an
/// `iss` parameter may name (Wise sends none today; an unexpected one is rejected).
pub(crate) fn parse(raw_query: &str, allowed_issuers: &[&str]) -> Result<Callback, ParseFailure> {
    let fail = |problem| FlowError::MalformedCallback { problem };
    let raw = raw_query.strip_prefix('?').unwrap_or(raw_query);
    if raw.len() > MAX_QUERY_LEN {
        return Err(ParseFailure {
            error: fail(CallbackProblem::Oversized),
            state: None,
        });
    }

    let mut seen_names: Vec<String> = Vec::new();
    let mut code: Option<String> = None;
    let mut state: Option<String> = None;
    let mut profile: Option<String> = None;
    let mut error: Option<String> = None;
    let mut iss: Option<String> = None;
    let mut problem: Option<CallbackProblem> = None;
    // A state that was read before (or despite) a problem, for consumption.
    let mut state_candidates = 0usize;
    let mut first_state: Option<String> = None;

    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = match decode_component(raw_name, MAX_NAME_LEN) {
            Ok(n) => n,
            Err(p) => {
                problem.get_or_insert(p);
                continue;
            }
        };
        let known = classify(&name);
        let canonical = match known {
            Some(Known::ProfileId) => "profileid".to_owned(),
            _ => name.clone(),
        };
        if known == Some(Known::State) {
            state_candidates += 1;
        }
        if seen_names.contains(&canonical) {
            problem.get_or_insert(CallbackProblem::DuplicateParameter);
            continue;
        }
        seen_names.push(canonical);
        if IMPLICIT_PARAMS.contains(&name.as_str()) {
            problem.get_or_insert(CallbackProblem::ImplicitGrantParameter);
            continue;
        }
        let Some(known) = known else {
            continue; // unknown parameters are ignored
        };
        let value = match decode_component(raw_value, MAX_VALUE_LEN) {
            Ok(v) => v,
            Err(p) => {
                problem.get_or_insert(p);
                continue;
            }
        };
        match known {
            Known::Code => code = Some(value),
            Known::State => {
                first_state = Some(value.clone());
                state = Some(value);
            }
            Known::ProfileId => profile = Some(value),
            Known::Error => error = Some(value),
            Known::Iss => iss = Some(value),
            // Validated (length, encoding, control characters) and otherwise unused:
            // adapters show a fixed message per reason, never Wise's free text.
            Known::ErrorDescription | Known::ErrorUri => {}
        }
    }

    // The state to consume even on failure: only when exactly one was sent.
    let consumable = || {
        if state_candidates == 1 {
            first_state
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(CsrfState::new)
        } else {
            None
        }
    };

    if let Some(problem) = problem {
        return Err(ParseFailure {
            error: fail(problem),
            state: consumable(),
        });
    }
    let state = match state {
        Some(s) if !s.is_empty() => CsrfState::new(s),
        _ => {
            return Err(ParseFailure {
                error: FlowError::MissingState,
                state: None,
            })
        }
    };
    let reject = |problem, state: CsrfState| ParseFailure {
        error: fail(problem),
        state: Some(state),
    };
    if let Some(iss) = iss {
        if !allowed_issuers.iter().any(|allowed| *allowed == iss) {
            return Err(reject(CallbackProblem::UnexpectedIssuer, state));
        }
    }
    let code = code.filter(|c| !c.is_empty());
    let error = error.filter(|e| !e.is_empty());
    let outcome = match (code, error) {
        (Some(_), Some(_)) => return Err(reject(CallbackProblem::ConflictingParameters, state)),
        (None, None) => return Err(reject(CallbackProblem::MissingCode, state)),
        (None, Some(error)) => {
            if error == "access_denied" {
                CallbackOutcome::Denied
            } else {
                CallbackOutcome::Error(ProviderErrorCode::parse(&error))
            }
        }
        (Some(code), None) => {
            if !is_plausible_code(&code) {
                return Err(reject(CallbackProblem::InvalidCode, state));
            }
            let profile_id = match profile.as_deref() {
                None | Some("") => None,
                Some(p) => match p.parse::<ProfileId>() {
                    Ok(id) => Some(id),
                    Err(_) => return Err(reject(CallbackProblem::InvalidProfileId, state)),
                },
            };
            CallbackOutcome::Code {
                code: AuthorizationCode::new(code),
                profile_id,
            }
        }
    };
    Ok(Callback { state, outcome })
}

/// Validates the fields a mobile app forwards (already decoded by the app's JSON).
pub(crate) fn from_fields(
    code: &str,
    state: &str,
    profile_id: Option<&str>,
) -> Result<Callback, ParseFailure> {
    let fail = |problem| FlowError::MalformedCallback { problem };
    if state.is_empty() {
        return Err(ParseFailure {
            error: FlowError::MissingState,
            state: None,
        });
    }
    let state_ok = state.len() <= MAX_VALUE_LEN && !state.chars().any(char::is_control);
    let state_value = state_ok.then(|| CsrfState::new(state));
    let check = |value: &str| -> Result<(), CallbackProblem> {
        if value.len() > MAX_VALUE_LEN {
            Err(CallbackProblem::Oversized)
        } else if value.chars().any(char::is_control) {
            Err(CallbackProblem::ControlCharacter)
        } else {
            Ok(())
        }
    };
    let checked = check(state)
        .and_then(|()| check(code))
        .and_then(|()| profile_id.map_or(Ok(()), check))
        .and_then(|()| {
            if code.is_empty() {
                Err(CallbackProblem::MissingCode)
            } else if !is_plausible_code(code) {
                Err(CallbackProblem::InvalidCode)
            } else {
                Ok(())
            }
        })
        .and_then(|()| match profile_id {
            None | Some("") => Ok(None),
            Some(p) => p
                .parse::<ProfileId>()
                .map(Some)
                .map_err(|_| CallbackProblem::InvalidProfileId),
        });
    match (checked, state_value) {
        (Ok(profile_id), Some(state)) => Ok(Callback {
            state,
            outcome: CallbackOutcome::Code {
                code: AuthorizationCode::new(code),
                profile_id,
            },
        }),
        (Ok(_), None) => Err(ParseFailure {
            error: fail(CallbackProblem::Oversized),
            state: None,
        }),
        (Err(problem), state) => Err(ParseFailure {
            error: fail(problem),
            state,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

    fn ok(q: &str) -> Callback {
        match parse(q, &[]) {
            Ok(c) => c,
            Err(f) => panic!("{q:?}: {:?}", f.error),
        }
    }

    fn problem(q: &str) -> CallbackProblem {
        match parse(q, &[]) {
            Err(ParseFailure {
                error: FlowError::MalformedCallback { problem },
                ..
            }) => problem,
            other => panic!("{q:?}: expected a malformed callback, got {other:?}"),
        }
    }

    fn code_of(c: &Callback) -> (&str, Option<u64>) {
        match &c.outcome {
            CallbackOutcome::Code { code, profile_id } => {
                (code.expose_secret(), profile_id.map(ProfileId::get))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_normal_callback_parses() {
        let c = ok(&format!("code=ABCDEF&state={STATE}&profileId=30000000"));
        assert_eq!(c.state.expose_secret(), STATE);
        assert_eq!(code_of(&c), ("ABCDEF", Some(30000000)));
        let c = ok(&format!("?state={STATE}&code=a%2Db"));
        assert_eq!(code_of(&c), ("a-b", None));
    }

    #[test]
    fn profile_id_spellings_are_accepted_once() {
        for name in ["profileId", "profileID", "profileid", "PROFILEID"] {
            let c = ok(&format!("code=c&state={STATE}&{name}=30000001"));
            assert_eq!(code_of(&c).1, Some(30000001), "{name}");
        }
        assert_eq!(
            problem(&format!("code=c&state={STATE}&profileId=1&profileID=1")),
            CallbackProblem::DuplicateParameter
        );
    }

    #[test]
    fn non_canonical_profile_ids_are_rejected() {
        for bad in [
            "%2B30000000",
            "+30000000",
            "0030000000",
            "%EF%BC%93%EF%BC%90%EF%BC%90%EF%BC%90",
            "12345678901234567890",
            "-1",
            "0",
            "1e3",
            "30000000%20",
        ] {
            assert_eq!(
                problem(&format!("code=c&state={STATE}&profileId={bad}")),
                CallbackProblem::InvalidProfileId,
                "{bad}"
            );
        }
    }

    #[test]
    fn duplicates_are_rejected_and_keep_no_state_to_consume() {
        let f = parse(&format!("code=a&code=b&state={STATE}"), &[]).unwrap_err();
        assert!(matches!(
            f.error,
            FlowError::MalformedCallback {
                problem: CallbackProblem::DuplicateParameter
            }
        ));
        assert_eq!(f.state.unwrap().expose_secret(), STATE);
        let f = parse(&format!("code=a&state={STATE}&state=x"), &[]).unwrap_err();
        assert!(f.state.is_none(), "conflicting states: nothing to consume");
        assert_eq!(
            problem(&format!("code=a&state={STATE}&other=1&other=2")),
            CallbackProblem::DuplicateParameter
        );
    }

    #[test]
    fn bad_encoding_and_control_characters_are_rejected() {
        for (q, p) in [
            ("code=%&state=S", CallbackProblem::InvalidEncoding),
            ("code=%4&state=S", CallbackProblem::InvalidEncoding),
            ("code=%zz&state=S", CallbackProblem::InvalidEncoding),
            ("code=%FF&state=S", CallbackProblem::InvalidEncoding),
            ("code=%C3%28&state=S", CallbackProblem::InvalidEncoding),
            ("code=a%00b&state=S", CallbackProblem::ControlCharacter),
            ("code=a%0D%0Ab&state=S", CallbackProblem::ControlCharacter),
            ("code=a%7Fb&state=S", CallbackProblem::ControlCharacter),
            ("code=a&state=S%09", CallbackProblem::ControlCharacter),
            ("co%zzde=a&state=S", CallbackProblem::InvalidEncoding),
            (
                "code=a&state=S&error_description=%FF",
                CallbackProblem::InvalidEncoding,
            ),
        ] {
            assert_eq!(problem(q), p, "{q}");
        }
    }

    #[test]
    fn oversized_input_is_rejected() {
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(
            problem(&format!("code={long}&state={STATE}")),
            CallbackProblem::Oversized
        );
        assert_eq!(
            problem(&format!(
                "code=a&state={STATE}&x={}",
                "b".repeat(MAX_QUERY_LEN)
            )),
            CallbackProblem::Oversized
        );
        assert_eq!(
            problem(&format!("code=a&state={STATE}&error_description={long}")),
            CallbackProblem::Oversized
        );
        // Exactly at the limit is fine.
        ok(&format!("code={}&state={STATE}", "a".repeat(MAX_VALUE_LEN)));
    }

    #[test]
    fn implicit_flow_parameters_are_rejected() {
        for p in [
            "access_token=x",
            "id_token=x",
            "token=x",
            "token_type=bearer",
        ] {
            assert_eq!(
                problem(&format!("code=a&state={STATE}&{p}")),
                CallbackProblem::ImplicitGrantParameter,
                "{p}"
            );
        }
    }

    #[test]
    fn state_is_mandatory() {
        for q in ["code=a", "code=a&state=", "code=a&state", ""] {
            assert!(
                matches!(parse(q, &[]).unwrap_err().error, FlowError::MissingState),
                "{q}"
            );
        }
    }

    #[test]
    fn code_and_error_are_exclusive_and_one_is_required() {
        assert_eq!(
            problem(&format!("code=a&error=access_denied&state={STATE}")),
            CallbackProblem::ConflictingParameters
        );
        assert_eq!(
            problem(&format!("state={STATE}")),
            CallbackProblem::MissingCode
        );
        assert_eq!(
            problem(&format!("code=&state={STATE}&profileId=1")),
            CallbackProblem::MissingCode
        );
        assert_eq!(
            problem(&format!("code=a+b&state={STATE}")),
            CallbackProblem::InvalidCode
        );
    }

    #[test]
    fn error_callbacks_are_classified() {
        let c = ok(&format!(
            "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={STATE}"
        ));
        assert!(matches!(c.outcome, CallbackOutcome::Denied));
        let c = ok(&format!("error=server_error&state={STATE}"));
        assert!(matches!(
            c.outcome,
            CallbackOutcome::Error(ProviderErrorCode::ServerError)
        ));
        let c = ok(&format!("error=whatever&state={STATE}"));
        assert!(matches!(
            c.outcome,
            CallbackOutcome::Error(ProviderErrorCode::Other)
        ));
    }

    #[test]
    fn state_is_kept_exactly_for_hash_comparison() {
        // One char or case differences survive parsing (they then miss the store).
        let c = ok("code=a&state=Abc");
        assert_eq!(c.state.expose_secret(), "Abc");
        let c = ok("code=a&state=a%2Bb+c");
        assert_eq!(c.state.expose_secret(), "a+b c");
    }

    #[test]
    fn issuer_must_be_expected() {
        assert_eq!(
            problem(&format!("code=a&state={STATE}&iss=https%3A%2F%2Fevil.com")),
            CallbackProblem::UnexpectedIssuer
        );
        assert!(parse(
            &format!("code=a&state={STATE}&iss=https%3A%2F%2Fwise.com"),
            &["https://wise.com"]
        )
        .is_ok());
    }

    #[test]
    fn mobile_fields_are_validated() {
        let c = from_fields("abc", STATE, Some("30000000")).unwrap();
        assert_eq!(code_of(&c), ("abc", Some(30000000)));
        assert!(matches!(
            from_fields("abc", "", None).unwrap_err().error,
            FlowError::MissingState
        ));
        let f = from_fields("abc", STATE, Some("+1")).unwrap_err();
        assert!(matches!(
            f.error,
            FlowError::MalformedCallback {
                problem: CallbackProblem::InvalidProfileId
            }
        ));
        assert!(f.state.is_some());
        assert!(from_fields("a\nb", STATE, None).is_err());
        assert!(from_fields("", STATE, None).is_err());
    }
}
