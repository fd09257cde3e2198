//! Tenant secrets at rest: sealing with the master key (orb-crypto) on the way into the store, and master
//! key rotation. The store only ever sees ciphertext.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use orb_core::TenantId;
use orb_crypto::secrecy::SecretString;
use orb_crypto::{KeyRing, MasterKey, SealedSecret, SecretAad};
use orb_store::{NewAuditEntry, SealedSecretRow, Store};

/// The associated-data kind of tenant secrets: table and column they live in.
const SECRET_KIND: &str = "secrets.ciphertext";

/// Largest secret value accepted (a PEM certificate chain fits comfortably).
const MAX_SECRET_LEN: usize = 64 * 1024;

/// A secret's name: 1–64 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!(
            "invalid secret name {name:?}: use 1 to 64 characters of a-z, 0-9, '.', '_' and '-', e.g. \
             graph.client_secret"
        );
    }
    Ok(())
}

/// Reads a secret value from `input`: everything up to EOF, without one trailing line break.
pub fn read_value(mut input: impl Read) -> Result<SecretString> {
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    input
        .by_ref()
        .take(MAX_SECRET_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .context("cannot read the secret value from standard input")?;
    if buf.len() > MAX_SECRET_LEN {
        bail!("the secret value is longer than {MAX_SECRET_LEN} bytes");
    }
    let mut end = buf.len();
    if buf[..end].ends_with(b"\n") {
        end -= 1;
        if buf[..end].ends_with(b"\r") {
            end -= 1;
        }
    }
    if end == 0 {
        bail!(
            "no secret value on standard input; pipe it in, e.g. `printf %s \"$VALUE\" | orb secret set \
             --tenant NAME KEY`"
        );
    }
    let text = std::str::from_utf8(&buf[..end]).context("the secret value is not valid UTF-8")?;
    Ok(SecretString::from(text.to_owned()))
}

/// Seals `value` for `tenant`/`name` and stores it with an audit entry.
pub async fn set(
    store: &dyn Store,
    key: &MasterKey,
    tenant: TenantId,
    name: &str,
    value: &SecretString,
    now: DateTime<Utc>,
) -> Result<String> {
    let audit = NewAuditEntry {
        tenant_id: Some(tenant),
        at: now,
        actor: "cli".into(),
        action: "secret.set".into(),
        target: name.to_owned(),
        ip: None,
    };
    set_audited(store, key, tenant, name, value, now, &audit).await
}

/// [`set`] with the caller's audit entry (the portal names the user and address).
pub async fn set_audited(
    store: &dyn Store,
    key: &MasterKey,
    tenant: TenantId,
    name: &str,
    value: &SecretString,
    now: DateTime<Utc>,
    audit: &NewAuditEntry,
) -> Result<String> {
    validate_name(name)?;
    // Sealing under a key other than the one the stored secrets use would split them over two keys, and
    // usually means the configured key is the wrong one.
    if let Some(other) = store.all_secrets_for_rotation().await?.into_iter().find(|r| r.key_id != key.id()) {
        bail!(
            "the stored secrets are sealed under master key {} but the configured key is {}; configure the \
             right key (ORB_MASTER_KEY_FILE or ORB_MASTER_KEY), or move all secrets to the new key with \
             `orb keys rotate`; nothing was stored",
            other.key_id,
            key.id()
        );
    }
    let ring = KeyRing::new(key.clone());
    let sealed = ring.seal_secret(&SecretAad::new(tenant, SECRET_KIND, name), value)?;
    let row = SealedSecretRow {
        tenant_id: tenant,
        name: name.to_owned(),
        key_id: sealed.key_id.clone(),
        nonce: sealed.nonce.to_vec(),
        ciphertext: sealed.ciphertext,
        updated_at: now,
    };
    store.put_secret(&row, audit).await?;
    Ok(sealed.key_id)
}

fn sealed_of(row: &SealedSecretRow) -> Result<SealedSecret> {
    SealedSecret::from_parts(row.key_id.clone(), &row.nonce, row.ciphertext.clone()).with_context(|| {
        format!("secret {:?} of tenant {} is malformed in the database", row.name, row.tenant_id)
    })
}

/// Opens every stored secret with `ring`; returns how many opened, or an error naming each that did not.
pub async fn check(store: &dyn Store, ring: &KeyRing) -> Result<usize> {
    let rows = store.all_secrets_for_rotation().await?;
    let mut failures = Vec::new();
    for row in &rows {
        let aad = SecretAad::new(row.tenant_id, SECRET_KIND, &row.name);
        if let Err(err) = sealed_of(row).and_then(|s| ring.open(&aad, &s).map_err(Into::into)) {
            failures.push(format!("secret {:?} of tenant {}: {err:#}", row.name, row.tenant_id));
        }
    }
    if !failures.is_empty() {
        bail!("{} of {} secrets cannot be opened:\n  {}", failures.len(), rows.len(), failures.join("\n  "));
    }
    Ok(rows.len())
}

/// Loads the new key from `path`, or generates one into it (owner-only permissions, never overwriting).
pub fn load_or_create_key(path: &Path) -> Result<(MasterKey, bool)> {
    if path.exists() {
        return Ok((MasterKey::from_file(path)?, false));
    }
    let key = MasterKey::generate()?;
    write_key_file(path, &key)?;
    Ok((key, true))
}

/// Writes a key file that only its owner can read; refuses to overwrite an existing file.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<()> {
    use orb_crypto::secrecy::ExposeSecret;
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the key file {} (it must not exist yet)", path.display()))?;
    writeln!(file, "{}", key.to_base64().expose_secret())
        .with_context(|| format!("cannot write the key file {}", path.display()))?;
    Ok(())
}

/// Re-encrypts every secret sealed under `current` (or already under `new`) under `new`, in one store
/// transaction. Returns the number of secrets re-encrypted.
pub async fn rotate(
    store: &dyn Store,
    current: MasterKey,
    new: MasterKey,
    now: DateTime<Utc>,
) -> Result<usize> {
    if current.id() == new.id() {
        bail!("the new key is the key already configured ({}); generate a different one", new.id());
    }
    let (old_id, new_id) = (current.id().to_owned(), new.id().to_owned());
    // Rows already under the new key (an interrupted earlier rotation) open too and are left as they are.
    let ring = KeyRing::new(current).with_previous([new.clone()])?;
    let target = KeyRing::new(new);
    let mut batch = Vec::new();
    for row in store.all_secrets_for_rotation().await? {
        if row.key_id == new_id {
            continue;
        }
        let aad = SecretAad::new(row.tenant_id, SECRET_KIND, &row.name);
        let plain = ring.open(&aad, &sealed_of(&row)?).with_context(|| {
            format!(
                "cannot open secret {:?} of tenant {} with the configured master key; nothing was changed",
                row.name, row.tenant_id
            )
        })?;
        let sealed = target.seal_secret(&aad, &plain)?;
        batch.push((
            SealedSecretRow {
                key_id: sealed.key_id.clone(),
                nonce: sealed.nonce.to_vec(),
                ciphertext: sealed.ciphertext,
                updated_at: now,
                ..row.clone()
            },
            row.key_id,
        ));
    }
    let audit = NewAuditEntry {
        tenant_id: None,
        at: now,
        actor: "cli".into(),
        action: "keys.rotate".into(),
        target: format!("{old_id} -> {new_id}"),
        ip: None,
    };
    store.rotate_secrets(&batch, &audit).await?;
    Ok(batch.len())
}

/// Opens the secret `name` of `tenant`; `None` when it was never set.
pub async fn open(
    store: &dyn Store,
    ring: &KeyRing,
    tenant: TenantId,
    name: &str,
) -> Result<Option<SecretString>> {
    let row = match store.get_secret(tenant, name).await {
        Ok(row) => row,
        Err(orb_store::StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let aad = SecretAad::new(tenant, SECRET_KIND, name);
    let value = ring
        .open(&aad, &sealed_of(&row)?)
        .with_context(|| format!("secret {name:?} of tenant {tenant} does not open with the master key"))?;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for ok in ["graph.client_secret", "topdesk.app_password", "a", "0-x"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "Graph", ".x", "a b", "a/b", &"x".repeat(65)] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid secret name"), "{bad:?}: {err}");
        }
    }

    fn read(input: &[u8]) -> Result<String> {
        use orb_crypto::secrecy::ExposeSecret;
        read_value(input).map(|s| s.expose_secret().to_owned())
    }

    #[test]
    fn values_from_standard_input() {
        assert_eq!(read(b"s3cr3t\n").unwrap(), "s3cr3t");
        assert_eq!(read(b"s3cr3t\r\n").unwrap(), "s3cr3t");
        assert_eq!(read(b"two\nlines\n").unwrap(), "two\nlines", "only one trailing line break is removed");
        assert_eq!(read(b"  spaced  ").unwrap(), "  spaced  ");
        assert!(read(b"").unwrap_err().to_string().contains("no secret value"));
        assert!(read(b"\n").unwrap_err().to_string().contains("no secret value"));
        assert!(read(&[0xff, 0xfe]).unwrap_err().to_string().contains("UTF-8"));
        assert!(read(&vec![b'a'; MAX_SECRET_LEN + 1]).unwrap_err().to_string().contains("longer than"));
    }
}
