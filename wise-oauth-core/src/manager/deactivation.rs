//! Wise said a user was deactivated (a verified webhook): that user's links need a re-link.

use std::time::{Duration, SystemTime};

use super::cache::CacheEntry;
use super::{store_error, TokenError, TokenManager};
use crate::events::WiseEvent;
use crate::ids::LinkKey;
use crate::store::{LinkRecord, LinkStatus, StoreError, Version};

/// How far Wise's clock (which stamps `occurred_at`) and ours (which stamps `linked_at`)
/// may disagree: a grant counts as newer than a deactivation only when it is later by more
/// than this. Erring this way only costs a re-link of a grant made within minutes of a
/// deactivation, which Wise does not allow anyway (the user must be reactivated first).
const CLOCK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Compare-and-swap attempts of one mark: a conflict means a writer whose lease ran out
/// wrote in between; the mark is decided again on what it wrote.
const MARK_ATTEMPTS: u32 = 3;

impl TokenManager {
    /// Marks `key`'s link as needing a re-link because Wise deactivated the Wise user
    /// `wise_user_id` at `occurred_at` (which revoked every token issued before).
    ///
    /// Only a link that belongs to that user, is active, and was granted before the event
    /// (within [`CLOCK_TOLERANCE`]) is marked: a grant after it is newer, so a late or replayed event never undoes it,
    /// and a second delivery of the same event finds the link already marked. Runs under
    /// the link's lease, so no refresh of the link is in flight on any instance. `Ok(true)`
    /// when this call marked it: the cache here is updated, the other instances are told
    /// through the change feed, and the events hook gets [`WiseEvent::RelinkRequired`].
    pub(crate) async fn relink_after_deactivation(
        &self,
        key: &LinkKey,
        wise_user_id: u64,
        occurred_at: SystemTime,
    ) -> Result<bool, TokenError> {
        let granted_before = occurred_at
            .checked_add(CLOCK_TOLERANCE)
            .unwrap_or(occurred_at);
        let work = async {
            for _ in 0..MARK_ATTEMPTS {
                let current = match self.inner.store.load(key).await {
                    Ok(Some(current)) => current,
                    Ok(None) => return Ok(false),
                    Err(e) => return Err(store_error(&e)),
                };
                let r = &current.value;
                let applies = r.wise_user_id == Some(wise_user_id)
                    && r.status == LinkStatus::Active
                    && r.linked_at < granted_before;
                if !applies {
                    return Ok(false);
                }
                let now = self.inner.clock.now();
                let record = LinkRecord {
                    status: LinkStatus::NeedsRelink,
                    updated_at: now,
                    ..r.clone()
                };
                match self
                    .inner
                    .store
                    .save(key, &record, Some(current.version))
                    .await
                {
                    Ok(version) => {
                        self.relink_marked(key, &record, version, now);
                        return Ok(true);
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(store_error(&e)),
                }
            }
            Err(TokenError::unavailable())
        };
        self.with_lease(key, work).await?
    }

    /// After a re-link mark was written at `version`: the cache, the other instances
    /// (change feed) and the events hook learn it.
    pub(super) fn relink_marked(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        version: Version,
        now: SystemTime,
    ) {
        let entry = CacheEntry::needs_relink(
            record.profile_id,
            record.access_expires_at,
            version,
            now,
            self.inner.thresholds,
        );
        self.inner.cache.put(key, entry);
        self.publish_change(key, Some(version));
        crate::metrics::relink_required();
        self.inner.events.emit(&WiseEvent::RelinkRequired {
            user: key.user().clone(),
            profile_id: record.profile_id,
        });
    }
}

impl TokenManager {
    /// Records `wise_user_id` on `key`'s link if it has none yet (a link stored before the
    /// library recorded Wise user ids), under the link's lease. Returns the id the link
    /// carries afterwards; [`TokenError::NotLinked`] when there is no link.
    pub(crate) async fn backfill_wise_user_id(
        &self,
        key: &LinkKey,
        wise_user_id: u64,
    ) -> Result<u64, TokenError> {
        let work = async {
            for _ in 0..MARK_ATTEMPTS {
                let current = match self.inner.store.load(key).await {
                    Ok(Some(current)) => current,
                    Ok(None) => return Err(TokenError::NotLinked),
                    Err(e) => return Err(store_error(&e)),
                };
                if let Some(known) = current.value.wise_user_id {
                    return Ok(known);
                }
                let record = current.value.clone().with_wise_user_id(Some(wise_user_id));
                match self
                    .inner
                    .store
                    .save(key, &record, Some(current.version))
                    .await
                {
                    Ok(_) => return Ok(wise_user_id),
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(store_error(&e)),
                }
            }
            Err(TokenError::unavailable())
        };
        self.with_lease(key, work).await?
    }
}
