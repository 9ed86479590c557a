//! Re-sealing every stored link under the primary encryption key: [`WiseOAuth::reseal`]
//! and its [`ResealReport`].

use std::collections::BTreeSet;
use std::fmt;

use crate::ids::{LinkKey, UserId};
use crate::manager::TokenManager;
use crate::seal::{SealedWith, Sealer};
use crate::store::{StoreError, MAX_LINK_PAGE};
use crate::wise::WiseOAuth;

/// What [`WiseOAuth::reseal`] did, link by link.
///
/// ```
/// # async fn rotate(wise: wise_oauth_core::WiseOAuth) -> Result<(), wise_oauth_core::StoreError> {
/// let report = wise.reseal().await?;
/// println!("{report}"); // "12 re-sealed, 988 already current, 0 unreadable, 0 skipped"
/// if report.unreadable() > 0 {
///     // Sealed under keys that are not configured: add them back, or let the users link again.
///     let keys: Vec<&str> = report.unreadable_key_ids().collect();
///     eprintln!("records under keys {keys:?} cannot be opened");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    resealed: u64,
    already_current: u64,
    unreadable: u64,
    skipped: u64,
    unreadable_key_ids: BTreeSet<String>,
}

impl ResealReport {
    /// Links that were sealed under an older key (or stored in clear, with
    /// [`open_unencrypted_records`](crate::WiseOAuthBuilder::open_unencrypted_records)) and
    /// are now sealed under the primary key.
    pub fn resealed(&self) -> u64 {
        self.resealed
    }

    /// Links already sealed the way the library writes now (primary key, or plain without
    /// keys); left untouched.
    pub fn already_current(&self) -> u64 {
        self.already_current
    }

    /// Links the configured keys cannot open (a key that is not configured any more, or a
    /// tampered record); left untouched. Their users are asked to link again.
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    /// Links not looked at this time: the store failed for them, or another instance held
    /// their refresh lease for too long. Running [`WiseOAuth::reseal`] again picks them up.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The key ids the unreadable records were sealed under (`"(plain)"` for records
    /// stored in clear, `"(unrecognised)"` for headers no key id fits). Never key material.
    pub fn unreadable_key_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.unreadable_key_ids.iter().map(String::as_str)
    }
}

impl fmt::Display for ResealReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} re-sealed, {} already current, {} unreadable, {} skipped",
            self.resealed, self.already_current, self.unreadable, self.skipped
        )
    }
}

/// What happened to one link.
enum Outcome {
    Resealed,
    Current,
    Unreadable(SealedWith),
    /// Unlinked meanwhile.
    Gone,
}

impl WiseOAuth {
    /// Re-seals every link of this configuration (environment and client) under the primary
    /// encryption key, after a key rotation: put the new key first in
    /// [`EncryptionKeys`](crate::EncryptionKeys), keep the old ones after it, deploy, run
    /// this once, and the old keys can go when the report shows no link left under them
    /// (refreshes re-seal links too, one by one, as they happen).
    ///
    /// Each link is rewritten while holding its refresh lease (no refresh of it runs
    /// meanwhile on any instance), with a compare-and-swap write; only the sealing changes.
    /// Links the keys cannot open are counted and left as they are, never deleted. Safe to
    /// run again, and while the app serves requests.
    ///
    /// [`StoreError::Unsupported`] when the store cannot list its links
    /// ([`TokenStore::list_links`](crate::TokenStore::list_links)); another error when
    /// listing fails (run it again later: links done so far stay done).
    pub async fn reseal(&self) -> Result<ResealReport, StoreError> {
        let manager = self.manager();
        let mut report = ResealReport::default();
        let mut after: Option<UserId> = None;
        loop {
            let page = self.linked_users(after.as_ref(), MAX_LINK_PAGE).await?;
            for user in &page.users {
                let key = self.link_key(user);
                let outcome = manager
                    .with_lease(&key, reseal_one(manager, &key))
                    .await
                    .ok()
                    .and_then(Result::ok);
                match outcome {
                    Some(Outcome::Resealed) => report.resealed += 1,
                    Some(Outcome::Current) => report.already_current += 1,
                    Some(Outcome::Unreadable(with)) => {
                        report.unreadable += 1;
                        report.unreadable_key_ids.insert(with.to_string());
                    }
                    Some(Outcome::Gone) => {}
                    None => report.skipped += 1,
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if report.unreadable > 0 {
            tracing::error!(
                unreadable = report.unreadable,
                record_keys = ?report.unreadable_key_ids,
                configured_keys = ?manager.sealer().key_ids(),
                "re-seal: some stored links cannot be opened with the configured encryption \
                 keys; they were left as they are and their users are asked to link again"
            );
        }
        tracing::info!(%report, "re-seal finished");
        Ok(report)
    }
}

/// Re-seals one link under the primary key (the caller holds its lease).
async fn reseal_one(manager: &TokenManager, key: &LinkKey) -> Result<Outcome, StoreError> {
    let store = manager.store();
    let sealer = manager.sealer();
    let Some(current) = store.load(key).await? else {
        return Ok(Outcome::Gone);
    };
    let record = &current.value;
    let sealed = record.sealed_tokens.as_bytes();
    let Ok(tokens) = sealer.open(key, record.profile_id, &record.sealed_tokens) else {
        return Ok(Outcome::Unreadable(Sealer::sealed_with(sealed)));
    };
    if sealer.is_current(sealed) {
        return Ok(Outcome::Current);
    }
    // Everything else stays as it is (status, times, Wise user id, ...).
    let mut resealed = record.clone();
    resealed.sealed_tokens = sealer.seal(key, record.profile_id, &tokens)?;
    resealed.updated_at = manager.clock().now();
    store.save(key, &resealed, Some(current.version)).await?;
    Ok(Outcome::Resealed)
}
