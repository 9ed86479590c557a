//! Creating a Wise user for an app user (registration-code grant, partner KYC only).
//!
//! Client-credentials token → `POST /v1/user/signup/registration_code` (409 `NOT_UNIQUE`
//! → [`Registration::UseLinkFlow`]) → registration-code grant → the new user's profile →
//! install the link. The exchange and the install run under the link's lease.

use crate::api::{ProfileKind, SignupOutcome};
use crate::ids::{ProfileId, UserId};
use crate::secret::RegistrationCode;

use super::error::{Registration, RegistrationError};
use super::LinkFlow;

/// Wise requires at least 32 characters.
const MIN_REGISTRATION_CODE_LEN: usize = 32;
const MAX_REGISTRATION_CODE_LEN: usize = 1024;
const MAX_EMAIL_LEN: usize = 254;

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn valid_code(code: &RegistrationCode) -> bool {
    let code = code.expose_secret();
    (MIN_REGISTRATION_CODE_LEN..=MAX_REGISTRATION_CODE_LEN).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_graphic())
}

impl LinkFlow {
    pub(crate) async fn register(
        &self,
        user: &UserId,
        email: &str,
        code: &RegistrationCode,
    ) -> Result<Registration, RegistrationError> {
        if !valid_email(email) {
            return Err(RegistrationError::InvalidEmail);
        }
        if !valid_code(code) {
            return Err(RegistrationError::InvalidRegistrationCode);
        }
        let key = self.link_key(user);
        let app_token = self
            .manager
            .app_token()
            .await
            .map_err(RegistrationError::from_token_error)?;
        let wise_user_id = match self
            .api
            .signup(&app_token, email, code, None)
            .await
            .map_err(RegistrationError::Signup)?
        {
            SignupOutcome::AlreadyExists => {
                tracing::info!(user = %user, "email already has a Wise account: use the link flow");
                return Ok(Registration::UseLinkFlow);
            }
            SignupOutcome::Created { wise_user_id } => wise_user_id,
        };
        let work = async {
            let response = self
                .endpoint
                .registration_code(email, code)
                .await
                .map_err(RegistrationError::Grant)?;
            let tokens = response
                .into_token_set(None)
                .map_err(RegistrationError::Grant)?;
            let profiles = self
                .api
                .profiles(&tokens.access_token)
                .await
                .map_err(RegistrationError::ProfileLookup)?;
            let profile_id = pick_profile(
                &profiles
                    .iter()
                    .filter(|p| p.visible)
                    .map(|p| (p.id, p.kind))
                    .collect::<Vec<_>>(),
            )
            .ok_or(RegistrationError::NoProfile)?;
            self.manager
                .install_link(&key, profile_id, Some(wise_user_id), tokens)
                .await
                .map_err(RegistrationError::from_token_error)?;
            Ok::<_, RegistrationError>(profile_id)
        };
        let profile_id = self
            .manager
            .with_lease(&key, work)
            .await
            .map_err(RegistrationError::from_token_error)??;
        tracing::info!(user = %user, profile_id = %profile_id, "Wise user registered and linked");
        Ok(Registration::Linked { profile_id })
    }
}

/// The only profile, or the only personal one among several.
fn pick_profile(profiles: &[(ProfileId, ProfileKind)]) -> Option<ProfileId> {
    match profiles {
        [(only, _)] => Some(*only),
        many => {
            let mut personal = many
                .iter()
                .filter(|(_, kind)| matches!(kind, ProfileKind::Personal));
            match (personal.next(), personal.next()) {
                (Some((id, _)), None) => Some(*id),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked() {
        assert!(valid_email("new@example.com"));
        for bad in [
            "",
            "no-at",
            "@x",
            "x@",
            "a b@x.com",
            "a@x.com\n",
            &"a".repeat(300),
        ] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn registration_codes_are_at_least_32_chars() {
        assert!(valid_code(&RegistrationCode::new("x".repeat(32))));
        assert!(!valid_code(&RegistrationCode::new("x".repeat(31))));
        assert!(!valid_code(&RegistrationCode::new(format!(
            "{} ",
            "x".repeat(32)
        ))));
    }

    #[test]
    fn profile_choice() {
        let p = |n| ProfileId::new(n).unwrap();
        assert_eq!(pick_profile(&[(p(1), ProfileKind::Business)]), Some(p(1)));
        assert_eq!(
            pick_profile(&[(p(1), ProfileKind::Business), (p(2), ProfileKind::Personal)]),
            Some(p(2))
        );
        assert_eq!(pick_profile(&[]), None);
        assert_eq!(
            pick_profile(&[(p(1), ProfileKind::Personal), (p(2), ProfileKind::Personal)]),
            None
        );
    }
}
