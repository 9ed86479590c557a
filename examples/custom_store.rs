//! Your own token store: `cargo run --example custom_store`.
//!
//! wise-oauth keeps links in any [`TokenStore`] and link flows in progress in any
//! [`PendingStore`]. This example implements both for a small but real store: a JSON file,
//! rewritten atomically (write a temporary file, `fsync`, rename over the old one) after
//! every change, so a crash leaves either the old or the new file, never half of one.
//!
//! What it shows:
//!
//! 1. **The store** ([`JsonFileStore`]): compare-and-swap writes on a version that never
//!    repeats for a link (not even after an unlink), refresh leases that expire, and
//!    pending flows that are taken at most once.
//! 2. **Encryption** needs nothing from the store: put [`EncryptionKeys`] on the
//!    `WiseOAuth` builder and the library seals every record (AEAD, bound to the link)
//!    before any store sees it. The store keeps the sealed bytes byte for byte.
//! 3. **The conformance suite**: the `#[cfg(test)]` module at the end runs every rule a
//!    store must follow, one line per trait (`cargo test --example custom_store`).
//!
//! Running it links a user against the embedded Wise emulator (auto-approve), then prints
//! the size of the sealed record in the file and checks that no token is in it.
//!
//! A file store suits one process: its leases live in memory. Several app instances need a
//! shared store such as `PostgresTokenStore` (feature `postgres`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wise_oauth::{
    ClientSecret, EncryptionKeys, Environment, LeaseHolder, LinkKey, LinkRecord, LinkStatus,
    PendingStore, ProfileId, SealedTokens, StoreError, TokenStore, UserId, Version, Versioned,
    WiseConfig, WiseOAuth, MAX_PENDING_PER_USER,
};
use wise_oauth_mock::{MockWise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

// ----- the store ---------------------------------------------------------------------------

/// Links and pending link flows in one JSON file; cheap to clone (clones share the file).
#[derive(Clone)]
pub struct JsonFileStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The file's content, the source of truth while the process runs. A tokio mutex: it
    /// is held across the file write, so writes reach the disk in order.
    state: tokio::sync::Mutex<FileState>,
    /// Refresh leases: in memory, as they only matter while this process runs.
    leases: Mutex<BTreeMap<KeyParts, (LeaseHolder, SystemTime)>>,
    /// Keeps a temporary directory alive (see [`JsonFileStore::temporary`]).
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for JsonFileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the content: it may hold (sealed) tokens.
        f.debug_struct("JsonFileStore").finish_non_exhaustive()
    }
}

/// The three parts of a [`LinkKey`], kept apart (never joined into one string, which could
/// make two keys collide).
type KeyParts = (String, String, String);

fn parts(key: &LinkKey) -> KeyParts {
    (
        key.environment().to_owned(),
        key.client_id().to_owned(),
        key.user().as_str().to_owned(),
    )
}

/// What the file holds.
#[derive(Default, Serialize, Deserialize)]
struct FileState {
    /// One entry per link ever saved; an unlinked one keeps its last version (`link: None`)
    /// so that linking again continues the version sequence.
    links: Vec<LinkEntry>,
    /// Pending link flows by the hex of their state hash.
    pending: BTreeMap<String, PendingEntry>,
    /// Insertion counter of pending flows (oldest first when an owner has too many).
    pending_seq: u64,
}

#[derive(Serialize, Deserialize)]
struct LinkEntry {
    key: KeyParts,
    version: u64,
    link: Option<StoredLink>,
}

#[derive(Serialize, Deserialize)]
struct StoredLink {
    profile_id: u64,
    needs_relink: bool,
    access_expires_at: SystemTime,
    linked_at: SystemTime,
    updated_at: SystemTime,
    /// The sealed bytes, hex-encoded.
    sealed_tokens: String,
}

#[derive(Serialize, Deserialize)]
struct PendingEntry {
    seq: u64,
    owner: KeyParts,
    /// The sealed flow, hex-encoded.
    payload: String,
    expires_at: SystemTime,
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

impl JsonFileStore {
    /// Opens the store at `path`, creating it on the first write.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_inner(path.into(), None).await
    }

    /// A store in a fresh temporary directory, deleted when the last clone is dropped (for
    /// demos and tests).
    pub async fn temporary() -> Result<Self, StoreError> {
        let dir = tempfile::tempdir().map_err(unavailable)?;
        Self::open_inner(dir.path().join("wise-links.json"), Some(dir)).await
    }

    async fn open_inner(
        path: PathBuf,
        temp_dir: Option<tempfile::TempDir>,
    ) -> Result<Self, StoreError> {
        let state = match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| StoreError::Corrupt("the store file is not valid JSON"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileState::default(),
            Err(e) => return Err(unavailable(e)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                state: tokio::sync::Mutex::new(state),
                leases: Mutex::new(BTreeMap::new()),
                _temp_dir: temp_dir,
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writes `state` to a temporary file, flushes it to disk and renames it over the
    /// store's file (atomic on POSIX file systems).
    async fn persist(&self, state: &FileState) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state).map_err(unavailable)?;
        let tmp = self.inner.path.with_extension("json.tmp");
        let mut file = tokio::fs::File::create(&tmp).await.map_err(unavailable)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &bytes)
            .await
            .map_err(unavailable)?;
        file.sync_all().await.map_err(unavailable)?;
        drop(file);
        tokio::fs::rename(&tmp, &self.inner.path)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Applies `change` to the state and persists it; on a failed write the in-memory
    /// state is restored, so memory never runs ahead of the file.
    async fn update<T>(
        &self,
        change: impl FnOnce(&mut FileState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.inner.state.lock().await;
        let before = serde_json::to_vec(&*state).map_err(unavailable)?;
        let result = change(&mut state)?;
        if let Err(err) = self.persist(&state).await {
            *state = serde_json::from_slice(&before).map_err(unavailable)?;
            return Err(err);
        }
        Ok(result)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Result<Vec<u8>, StoreError> {
    let corrupt = || StoreError::Corrupt("invalid hex in the store file");
    if text.len() % 2 != 0 {
        return Err(corrupt());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(text.get(i..i + 2).ok_or_else(corrupt)?, 16).map_err(|_| corrupt())
        })
        .collect()
}

impl StoredLink {
    fn from_record(record: &LinkRecord) -> Self {
        Self {
            profile_id: record.profile_id.get(),
            needs_relink: record.status == LinkStatus::NeedsRelink,
            access_expires_at: record.access_expires_at,
            linked_at: record.linked_at,
            updated_at: record.updated_at,
            sealed_tokens: to_hex(record.sealed_tokens.as_bytes()),
        }
    }

    fn to_record(&self) -> Result<LinkRecord, StoreError> {
        let profile_id = ProfileId::new(self.profile_id)
            .ok_or(StoreError::Corrupt("invalid profile id in the store file"))?;
        let status = if self.needs_relink {
            LinkStatus::NeedsRelink
        } else {
            LinkStatus::Active
        };
        Ok(LinkRecord::new(
            profile_id,
            status,
            self.access_expires_at,
            self.linked_at,
            self.updated_at,
            SealedTokens::new(from_hex(&self.sealed_tokens)?),
        ))
    }
}

#[async_trait]
impl TokenStore for JsonFileStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        let key = parts(key);
        let state = self.inner.state.lock().await;
        let Some(entry) = state.links.iter().find(|e| e.key == key) else {
            return Ok(None);
        };
        match &entry.link {
            None => Ok(None),
            Some(link) => Ok(Some(Versioned {
                value: link.to_record()?,
                version: Version::new(entry.version),
            })),
        }
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        let key = parts(key);
        let link = StoredLink::from_record(record);
        self.update(move |state| {
            let index = state.links.iter().position(|e| e.key == key);
            // Compare-and-swap: insert only when absent, replace only the expected version.
            let current = index
                .map(|i| &state.links[i])
                .filter(|e| e.link.is_some())
                .map(|e| Version::new(e.version));
            if current != expected {
                return Err(StoreError::Conflict);
            }
            let entry = match index {
                Some(i) => &mut state.links[i],
                None => {
                    state.links.push(LinkEntry {
                        key,
                        version: 0,
                        link: None,
                    });
                    state.links.last_mut().expect("just pushed")
                }
            };
            entry.version += 1;
            entry.link = Some(link);
            Ok(Version::new(entry.version))
        })
        .await
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        let key = parts(key);
        self.update(move |state| {
            // A tombstone: the version stays, so a late write against the old link fails.
            Ok(match state.links.iter_mut().find(|e| e.key == key) {
                Some(entry) => entry.link.take().is_some(),
                None => false,
            })
        })
        .await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let mut leases = self.inner.leases.lock().expect("lease map");
        let lease = leases.entry(parts(key)).or_insert((holder, now));
        let (current, until) = *lease;
        if current == holder || until <= now {
            *lease = (holder, now + ttl);
            return Ok(true);
        }
        Ok(false)
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        let mut leases = self.inner.leases.lock().expect("lease map");
        let key = parts(key);
        if leases.get(&key).is_some_and(|(h, _)| *h == holder) {
            leases.remove(&key);
        }
        Ok(())
    }
}

#[async_trait]
impl PendingStore for JsonFileStore {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let (id, owner, payload) = (to_hex(state_hash), parts(owner), to_hex(pending));
        self.update(move |state| {
            state.pending.retain(|_, p| p.expires_at > now);
            state.pending_seq += 1;
            let seq = state.pending_seq;
            state.pending.insert(
                id,
                PendingEntry {
                    seq,
                    owner: owner.clone(),
                    payload,
                    expires_at: now + ttl,
                },
            );
            // At most MAX_PENDING_PER_USER flows per owner: drop the oldest.
            let mut mine: Vec<(u64, String)> = state
                .pending
                .iter()
                .filter(|(_, p)| p.owner == owner)
                .map(|(id, p)| (p.seq, id.clone()))
                .collect();
            if mine.len() > MAX_PENDING_PER_USER {
                mine.sort();
                for (_, id) in &mine[..mine.len() - MAX_PENDING_PER_USER] {
                    state.pending.remove(id);
                }
            }
            Ok(())
        })
        .await
    }

    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let id = to_hex(state_hash);
        let now = SystemTime::now();
        let taken = self
            .update(move |state| Ok(state.pending.remove(&id)))
            .await?;
        match taken {
            Some(entry) if entry.expires_at > now => Ok(Some(from_hex(&entry.payload)?)),
            _ => Ok(None),
        }
    }
}

// ----- using it ----------------------------------------------------------------------------

/// The library follows the emulator's clock (not needed here, but it is what tests use).
#[derive(Debug)]
struct EmulatorClock(wise_oauth_mock::MockWiseHandle);

impl wise_oauth::Clock for EmulatorClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The Wise emulator, approving every consent as alice.
    let emulator = MockWise::builder()
        .auto_approve("alice@example.com")
        .start()
        .await?;
    let redirect_uri = "http://127.0.0.1:3000/wise/callback";
    emulator.register_redirect_uri(DEMO_CLIENT_ID, redirect_uri);
    let environment =
        Environment::custom("emulator", &emulator.base_url(), &emulator.authorize_url())?;
    let config = WiseConfig::builder(
        DEMO_CLIENT_ID,
        ClientSecret::new(DEMO_CLIENT_SECRET),
        redirect_uri,
    )
    .environment(environment)
    .build()?;

    // Your store, for links and for link flows; the keys come from your secret manager
    // (e.g. `EncryptionKeys::from_env()` reads WISE_TOKEN_KEYS). Never hard-code real keys.
    let store = JsonFileStore::temporary().await?;
    let keys = EncryptionKeys::new().key("example-k1", [42; 32]);
    let wise = WiseOAuth::builder(config)
        .store(store.clone())
        .pending_store(store.clone())
        .encryption(keys)
        .clock(EmulatorClock(emulator.clone()))
        .build()?;

    // Link app user "u-1001" through the real flow: start, Wise's consent, the callback.
    let user = UserId::new("u-1001")?;
    let start = wise.start_link(&user, &Default::default(), None).await?;
    let binding = start
        .set_cookie()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .ok_or("no binding cookie")?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let consent = http.get(start.authorize_url().clone()).send().await?;
    let callback = consent
        .headers()
        .get("location")
        .ok_or("the emulator did not redirect")?
        .to_str()?;
    let query = reqwest::Url::parse(callback)?
        .query()
        .unwrap_or_default()
        .to_owned();
    let linked = wise.complete_link(&user, &query, Some(&binding)).await?;
    let token = wise.token(&user).await?;
    println!(
        "linked app user {} to Wise profile {}",
        user.as_str(),
        linked.profile_id()
    );

    // What the store got: sealed bytes only.
    let record = store
        .load(&wise.link_key(&user))
        .await?
        .ok_or("the link is not in the store")?;
    let sealed = &record.value.sealed_tokens.as_bytes();
    let file = tokio::fs::read(store.path()).await?;
    let access = token.access_token().expose_secret().as_bytes();
    let issued = emulator.user_tokens("alice@example.com");
    let refresh = issued
        .first()
        .and_then(|t| t.refresh_token.clone())
        .ok_or("no refresh token at the emulator")?;
    println!(
        "store file {} ({} bytes): record version {}, sealed tokens {} bytes",
        store.path().display(),
        file.len(),
        record.version.get(),
        sealed.len()
    );
    for (name, secret) in [("access", access), ("refresh", refresh.as_bytes())] {
        let in_record = contains(sealed, secret);
        let in_file = contains(&file, secret) || contains(&file, to_hex(secret).as_bytes());
        println!("{name} token in the sealed record: {in_record}; in the file: {in_file}");
        if in_record || in_file {
            return Err(format!("the {name} token is stored in clear").into());
        }
    }
    println!("ok: the store only ever saw sealed bytes");
    Ok(())
}

// ----- the conformance suite ---------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::JsonFileStore;

    // One line per trait: a module of #[tokio::test]s (one per rule), each on a fresh store.
    // Needs `wise-oauth-core` with the `test-util` feature as a dev-dependency.
    wise_oauth::token_store_conformance!(json_file_tokens, async {
        JsonFileStore::temporary().await.expect("store")
    });
    wise_oauth::pending_store_conformance!(json_file_pending, async {
        JsonFileStore::temporary().await.expect("store")
    });

    /// A second store on the same file sees what the first wrote (it is durable).
    #[tokio::test]
    async fn reopening_the_file_keeps_links_and_versions() {
        use wise_oauth::{LinkKey, LinkRecord, LinkStatus, ProfileId, SealedTokens, TokenStore};
        use wise_oauth::{UserId, Version};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.json");
        let key = LinkKey::new("sandbox", "client", UserId::new("u").unwrap());
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_750_000_000_123_456_789);
        let record = LinkRecord::new(
            ProfileId::new(7).unwrap(),
            LinkStatus::Active,
            at,
            at,
            at,
            SealedTokens::new(vec![0, 1, 255]),
        );
        let first = JsonFileStore::open(&path).await.unwrap();
        let v1 = first.save(&key, &record, None).await.unwrap();
        assert!(first.delete(&key).await.unwrap());
        let v2 = first.save(&key, &record, None).await.unwrap();
        assert_eq!(
            v2,
            Version::new(v1.get() + 1),
            "versions continue after an unlink"
        );
        drop(first);
        let second = JsonFileStore::open(&path).await.unwrap();
        let loaded = second.load(&key).await.unwrap().expect("still there");
        assert_eq!(loaded.version, v2);
        assert_eq!(loaded.value, record);
        assert!(
            !path.with_extension("json.tmp").exists(),
            "no temporary file left"
        );
    }
}
