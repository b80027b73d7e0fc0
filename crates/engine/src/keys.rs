//! API keys and their roles: who may collect, who may read customer data, who may change it.
//!
//! Three roles (see `docs/security.md`): a **write** key only collects events (it ships inside web pages and apps,
//! so it is public by nature); a **read** key runs analyses, reads customers and opens the UI; an **admin** key
//! also merges identities, changes rules, deletes customers and manages keys. Keys live in `keys.json` in the data
//! directory, each stored as an Argon2id hash of its secret, never the secret itself. A key reads
//! `wm_<role>_<id>_<secret>`: the id (not secret) names the record, the secret is 160 random bits.
//!
//! Verifying a key costs one Argon2 hash (tens of milliseconds by design); the SHA-256 of a key that verified is
//! remembered so the next request with it costs a constant-time comparison. `keys.json` may be changed by
//! `waymark keys …` while a server runs: the server notices within a second, so a revoked key stops working
//! without a restart. The file is changed under an exclusive lock (`keys.lock`), so the CLI and the server's admin
//! API never lose each other's changes, and replaced atomically, so a crash never leaves half a file.

use argon2::password_hash::SaltString;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use subtle::ConstantTimeEq;

/// The file in the data directory that holds the keys' hashes.
pub const KEYS_FILE: &str = "keys.json";
const LOCK_FILE: &str = "keys.lock";
const FORMAT: u32 = 1;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Collect events only (`/v1/track`, `/v1/batch`, …); safe to ship inside a web page or an app.
    Write,
    /// Read analyses, customers, rules and the UI.
    Read,
    /// Everything: identity merges, rules changes, deletion, key management, and all a read or write key may do.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Write => "write",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// Parses `write`, `read` or `admin`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "write" => Some(Role::Write),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role may do what `access` asks for.
    pub fn grants(self, access: Access) -> bool {
        match access {
            Access::Public => true,
            Access::Authenticated => true,
            Access::Collect => matches!(self, Role::Write | Role::Admin),
            Access::Read => matches!(self, Role::Read | Role::Admin),
            Access::Admin => self == Role::Admin,
        }
    }
}

/// What an endpoint asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone: health, the UI's shell (which holds no data), the OpenAPI document.
    Public,
    /// Any valid key, whatever its role (who am I).
    Authenticated,
    /// A write or admin key.
    Collect,
    /// A read or admin key.
    Read,
    /// An admin key.
    Admin,
}

/// One key as stored: its hash, never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    name: String,
    role: Role,
    /// Argon2id PHC string of the whole key text.
    hash: String,
    /// The key's first and last characters, so a person can tell keys apart without the secret.
    hint: String,
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    format: u32,
    keys: Vec<StoredKey>,
}

/// A key as listed: everything but its hash.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The key's first and last characters (`wm_read_1a2b3c4d_9f…e1`).
    pub hint: String,
    pub created_at: String,
    /// When it was revoked; a revoked key is refused with `revoked_key`.
    pub revoked_at: Option<String>,
}

impl From<&StoredKey> for KeyInfo {
    fn from(key: &StoredKey) -> KeyInfo {
        KeyInfo {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role,
            hint: key.hint.clone(),
            created_at: key.created_at.clone(),
            revoked_at: key.revoked_at.clone(),
        }
    }
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CreatedKey {
    /// The whole key: give it to its user now, it cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// Who presented a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A known, active key.
    Valid {
        role: Role,
        id: String,
        name: String,
    },
    /// A known key that was revoked.
    Revoked { id: String },
    /// Not a key of this server.
    Unknown,
}

/// Why a keys operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a keys file this version reads: {message}; restore it from a backup or remove it and create the keys again")]
    Corrupt { path: PathBuf, message: String },
    #[error("no key has the id `{0}`; `waymark keys list` shows them")]
    NotFound(String),
    #[error("a key's name must be 1 to 100 characters without control characters")]
    InvalidName,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeysError + '_ {
    move |source| KeysError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct Loaded {
    keys: Vec<StoredKey>,
    /// (modification time, length) of `keys.json` when read; a change means another process wrote it.
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// The keys of one data directory, plus write keys configured in plain text (`--write-key`).
pub struct Keys {
    dir: PathBuf,
    configured_write: Vec<String>,
    loaded: RwLock<Loaded>,
    /// Key id → SHA-256 of the key text that verified against its hash.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// One Argon2 verification at a time: a flood of wrong keys costs one core, not all of them.
    hashing: Mutex<()>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

fn read_file(path: &Path) -> Result<Vec<StoredKey>, KeysError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(path)(error)),
    };
    let file: KeysFile = serde_json::from_slice(&text).map_err(|error| KeysError::Corrupt {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    if file.format != FORMAT {
        return Err(KeysError::Corrupt {
            path: path.to_path_buf(),
            message: format!("format {} (this version reads {FORMAT})", file.format),
        });
    }
    Ok(file.keys)
}

/// Splits `wm_<role>_<id>_<secret>` into its role and id.
fn parse_key(text: &str) -> Option<(Role, &str)> {
    let rest = text.strip_prefix("wm_")?;
    let (role, rest) = rest.split_once('_')?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 8) && hex(secret, 40)).then_some(())?;
    Some((Role::parse(role)?, id))
}

impl Keys {
    /// The keys of `dir` (created on first use), accepting also `configured_write` as write keys.
    pub fn open(dir: impl AsRef<Path>, configured_write: Vec<String>) -> Result<Keys, KeysError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(KEYS_FILE);
        let keys = read_file(&path)?;
        Ok(Keys {
            loaded: RwLock::new(Loaded {
                keys,
                stamp: stamp(&path),
                checked: Instant::now(),
            }),
            dir,
            configured_write: configured_write
                .into_iter()
                .filter(|k| !k.is_empty())
                .collect(),
            verified: Mutex::new(HashMap::new()),
            hashing: Mutex::new(()),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(KEYS_FILE)
    }

    /// Re-reads `keys.json` if another process changed it; at most once a second unless `force`.
    fn refresh(&self, force: bool) {
        {
            let loaded = self.loaded.read();
            if !force && loaded.checked.elapsed() < Duration::from_secs(1) {
                return;
            }
        }
        let path = self.path();
        let current = stamp(&path);
        let mut loaded = self.loaded.write();
        loaded.checked = Instant::now();
        if current == loaded.stamp {
            return;
        }
        match read_file(&path) {
            Ok(keys) => {
                loaded.keys = keys;
                loaded.stamp = current;
            }
            // Keep the keys we had rather than open the door: a broken file is reported, not obeyed.
            Err(error) => {
                tracing::error!(%error, "could not re-read the keys file; keeping the keys loaded before")
            }
        }
    }

    /// Changes `keys.json` under the lock: re-reads it, applies `change`, writes it back atomically.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Vec<StoredKey>) -> Result<T, KeysError>,
    ) -> Result<T, KeysError> {
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = std::fs::File::create(&lock_path).map_err(io_error(&lock_path))?;
        fs2::FileExt::lock_exclusive(&lock).map_err(io_error(&lock_path))?;
        let path = self.path();
        let mut keys = read_file(&path)?;
        let result = change(&mut keys)?;
        let text = serde_json::to_vec_pretty(&KeysFile {
            format: FORMAT,
            keys: keys.clone(),
        })
        .expect("keys serialise");
        waymark_store::write_file_atomically(&path, &text).map_err(io_error(&path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let mut loaded = self.loaded.write();
        loaded.keys = keys;
        loaded.stamp = stamp(&path);
        loaded.checked = Instant::now();
        Ok(result)
    }

    /// Creates a key with `role` and a human `name` ("Web SDK", "CX team"); returns its text, shown only now.
    pub fn create(&self, role: Role, name: &str) -> Result<CreatedKey, KeysError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(KeysError::InvalidName);
        }
        self.change(|keys| {
            let mut rng = rand::rng();
            let id = loop {
                let id = format!("{:08x}", rng.random::<u32>());
                if !keys.iter().any(|k| k.id == id) {
                    break id;
                }
            };
            let secret: String = (0..20)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect();
            let text = format!("wm_{}_{id}_{secret}", role.as_str());
            let salt = SaltString::generate(&mut OsRng);
            let hash = Argon2::default()
                .hash_password(text.as_bytes(), &salt)
                .expect("Argon2 with default parameters hashes any input")
                .to_string();
            let hint = format!("{}…{}", &text[..text.len() - 38], &text[text.len() - 4..]);
            let stored = StoredKey {
                id,
                name: name.to_string(),
                role,
                hash,
                hint,
                created_at: now_rfc3339(),
                revoked_at: None,
            };
            let info = KeyInfo::from(&stored);
            keys.push(stored);
            Ok(CreatedKey { key: text, info })
        })
    }

    /// Revokes the key `id`: from now on (and within a second in every other process) it is refused.
    pub fn revoke(&self, id: &str) -> Result<KeyInfo, KeysError> {
        let info = self.change(|keys| {
            let key = keys
                .iter_mut()
                .find(|k| k.id == id)
                .ok_or_else(|| KeysError::NotFound(id.to_string()))?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(now_rfc3339());
            }
            Ok(KeyInfo::from(&*key))
        })?;
        self.verified.lock().remove(id);
        Ok(info)
    }

    /// Every key, revoked ones included, oldest first.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.refresh(true);
        self.loaded.read().keys.iter().map(KeyInfo::from).collect()
    }

    /// Whether reading needs a key: a read or admin key exists or once did. Without one, a server on loopback is
    /// open to whoever can reach it (development), and `serve` refuses any other address. A revoked key still
    /// counts: revoking the last key must close the door, never open it.
    pub fn reads_protected(&self) -> bool {
        self.refresh(false);
        self.loaded
            .read()
            .keys
            .iter()
            .any(|k| matches!(k.role, Role::Read | Role::Admin))
    }

    /// Whether collecting needs a key: a write key is configured, or a write or admin key exists or once did.
    pub fn collect_protected(&self) -> bool {
        self.refresh(false);
        !self.configured_write.is_empty()
            || self
                .loaded
                .read()
                .keys
                .iter()
                .any(|k| matches!(k.role, Role::Write | Role::Admin))
    }

    /// Who presented `text`, when that is known without an Argon2 hash: a configured write key, an id no key
    /// has, or a key that verified before. `None` means [`Keys::verify`] must hash.
    pub fn verify_remembered(&self, text: &str) -> Option<Verdict> {
        self.remembered(text, &Sha256::digest(text.as_bytes()).into())
    }

    fn remembered(&self, text: &str, digest: &[u8; 32]) -> Option<Verdict> {
        let Some((_, id)) = parse_key(text) else {
            // Write keys configured in plain text: compare digests, so the time taken says nothing of the key.
            let known =
                self.configured_write
                    .iter()
                    .fold(subtle::Choice::from(0u8), |seen, key| {
                        let candidate: [u8; 32] = Sha256::digest(key.as_bytes()).into();
                        seen | candidate.ct_eq(digest)
                    });
            return Some(if bool::from(known) {
                Verdict::Valid {
                    role: Role::Write,
                    id: "configured".into(),
                    name: "configured write key".into(),
                }
            } else {
                Verdict::Unknown
            });
        };
        self.refresh(false);
        let loaded = self.loaded.read();
        let Some(key) = loaded.keys.iter().find(|k| k.id == id) else {
            return Some(Verdict::Unknown);
        };
        let seen = self.verified.lock().get(id).copied()?;
        bool::from(seen.ct_eq(digest)).then(|| Self::verdict(key))
    }

    fn verdict(key: &StoredKey) -> Verdict {
        if key.revoked_at.is_some() {
            Verdict::Revoked { id: key.id.clone() }
        } else {
            Verdict::Valid {
                role: key.role,
                id: key.id.clone(),
                name: key.name.clone(),
            }
        }
    }

    /// Who presented `text`. Compares in constant time; costs one Argon2 hash the first time a key is seen (and
    /// for every wrong secret under a real key's id), one at a time.
    pub fn verify(&self, text: &str) -> Verdict {
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(verdict) = self.remembered(text, &digest) {
            return verdict;
        }
        let Some((_, id)) = parse_key(text) else {
            return Verdict::Unknown;
        };
        let Some(hash) = self
            .loaded
            .read()
            .keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.hash.clone())
        else {
            return Verdict::Unknown;
        };
        let genuine = {
            let _one_at_a_time = self.hashing.lock();
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(text.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        };
        if !genuine {
            return Verdict::Unknown;
        }
        self.verified.lock().insert(id.to_string(), digest);
        let loaded = self.loaded.read();
        loaded
            .keys
            .iter()
            .find(|k| k.id == id)
            .map_or(Verdict::Unknown, Self::verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_by_role_and_stop_working_when_revoked_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let server = Keys::open(dir.path(), vec!["sdk-key".into()]).unwrap();
        assert!(!server.reads_protected());
        assert!(server.collect_protected());
        let read = server.create(Role::Read, "CX team").unwrap();
        assert!(read.key.starts_with("wm_read_"));
        assert!(server.reads_protected());
        let valid = server.verify(&read.key);
        assert!(
            matches!(
                valid,
                Verdict::Valid {
                    role: Role::Read,
                    ..
                }
            ),
            "{valid:?}"
        );
        // Twice: the second answer comes from the remembered digest.
        assert_eq!(server.verify(&read.key), valid);
        assert!(matches!(
            server.verify("sdk-key"),
            Verdict::Valid {
                role: Role::Write,
                ..
            }
        ));
        assert_eq!(server.verify("sdk-key2"), Verdict::Unknown);
        // The right id with a wrong secret is a wrong key, not a revoked or valid one.
        let forged = format!(
            "{}{}",
            &read.key[..read.key.len() - 1],
            if read.key.ends_with('0') { '1' } else { '0' }
        );
        assert_eq!(server.verify(&forged), Verdict::Unknown);
        // The secret is not in the file; only its hash is.
        let file = std::fs::read_to_string(dir.path().join(KEYS_FILE)).unwrap();
        assert!(!file.contains(&read.key[read.key.len() - 40..]));

        // The CLI, another process, revokes it; the server notices within a second.
        let cli = Keys::open(dir.path(), vec![]).unwrap();
        cli.revoke(&read.info.id).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            server.verify(&read.key),
            Verdict::Revoked {
                id: read.info.id.clone()
            }
        );
        // Revoking the only read key closes the door; it does not open it again.
        assert!(server.reads_protected());
        assert!(matches!(cli.revoke("nope"), Err(KeysError::NotFound(_))));
        assert!(matches!(
            cli.create(Role::Admin, " "),
            Err(KeysError::InvalidName)
        ));
        assert_eq!(server.list().len(), 1);
    }

    #[test]
    fn a_broken_keys_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEYS_FILE), "{not json").unwrap();
        let error = Keys::open(dir.path(), vec![]).err().unwrap().to_string();
        assert!(error.contains("keys.json"), "{error}");
    }
}
