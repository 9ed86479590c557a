//! Public descriptions of users and profiles for [`crate::MockWiseHandle::create_user`].

use serde::{Deserialize, Serialize};

/// The two kinds of Wise profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// A personal profile (`"PERSONAL"` in `/v2/profiles`, `"personal"` in `/v1/profiles`).
    #[default]
    Personal,
    /// A business profile (`"BUSINESS"` / `"business"`).
    Business,
}

impl ProfileKind {
    /// `PERSONAL` or `BUSINESS`, as `/v2/profiles` spells it.
    pub fn upper(self) -> &'static str {
        match self {
            ProfileKind::Personal => "PERSONAL",
            ProfileKind::Business => "BUSINESS",
        }
    }

    /// `personal` or `business`, as the legacy `/v1/profiles` spells it.
    pub fn lower(self) -> &'static str {
        match self {
            ProfileKind::Personal => "personal",
            ProfileKind::Business => "business",
        }
    }
}

/// A profile to create with a [`NewUser`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NewProfile {
    /// Personal or business.
    #[serde(default)]
    pub kind: ProfileKind,
    /// Full name (personal) or business name.
    pub name: String,
}

impl NewProfile {
    /// A personal profile with this full name.
    pub fn personal(name: impl Into<String>) -> Self {
        NewProfile {
            kind: ProfileKind::Personal,
            name: name.into(),
        }
    }

    /// A business profile with this business name.
    pub fn business(name: impl Into<String>) -> Self {
        NewProfile {
            kind: ProfileKind::Business,
            name: name.into(),
        }
    }
}

/// A user to add to the emulator (`POST /__mock/users` takes the same JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NewUser {
    /// Login email, unique (case-insensitive).
    pub email: String,
    /// Login password.
    pub password: String,
    /// Whether the login asks for a 2FA code (always `111111`).
    #[serde(default)]
    pub two_factor: bool,
    /// Profiles in order; the first is the one auto-approve picks.
    #[serde(default)]
    pub profiles: Vec<NewProfile>,
}

impl NewUser {
    /// A user without 2FA and with one personal profile named after the email.
    pub fn new(email: impl Into<String>, password: impl Into<String>) -> Self {
        let email = email.into();
        let name = email.split('@').next().unwrap_or("User").to_owned();
        NewUser {
            email,
            password: password.into(),
            two_factor: false,
            profiles: vec![NewProfile::personal(name)],
        }
    }

    /// Turns 2FA on or off.
    pub fn two_factor(mut self, on: bool) -> Self {
        self.two_factor = on;
        self
    }

    /// Replaces the profile list.
    pub fn profiles(mut self, profiles: Vec<NewProfile>) -> Self {
        self.profiles = profiles;
        self
    }
}

/// What [`crate::MockWiseHandle::create_user`] created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    /// The new user's id (as in `/v1/me`).
    pub user_id: u64,
    /// The new profile ids, in the order given.
    pub profile_ids: Vec<u64>,
}

/// Tokens currently valid for one (client, profile) link of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedTokens {
    /// The client the tokens were issued to.
    pub client_id: String,
    /// The consented profile.
    pub profile_id: u64,
    /// The newest access token of the link, if still valid.
    pub access_token: Option<String>,
    /// The link's refresh token, if still valid.
    pub refresh_token: Option<String>,
}
