//! Many shops in one deployment: where each shop's store lives beside the
//! deployment's own (the default shop's), found by name.
//!
//! - A directory store `DIR` keeps shop `acme` in `DIR/shops/acme/`, a
//!   store directory of its own (events, catalog, models, search indexes,
//!   the online log).
//! - A PostgreSQL store `postgres://…/DB` keeps shop `acme` in the database
//!   `DB__acme` on the same server. A database per shop isolates
//!   everything a shop has — tables, the change feed's channel, the
//!   worker's advisory lock — with no shop column to forget in a query;
//!   the role needs the `CREATEDB` privilege to create one.
//!
//! The registry is what exists: the folders, or the databases named so.
//! Names are safe identifiers ([`check_name`]), so a name never needs
//! escaping in a path or an SQL identifier.

use std::path::PathBuf;

use crate::{parse_url, Location, Result, StoreError};

/// The deployment's own shop (the store given to `--store`), reachable
/// both by the single-shop paths and as `/v1/shops/default/…`.
pub const DEFAULT_SHOP: &str = "default";

/// Longest shop name (a PostgreSQL database name, `DB__NAME`, has at most
/// 63 bytes).
pub const MAX_NAME: usize = 32;

/// Why `name` is not a shop name, if it is not one: 1 to 32 characters of
/// lower-case ASCII letters, digits, `-` and `_`, starting with a letter
/// or digit (no `.`, `/` or `%`: a name is a folder and a database name).
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let why = if name.is_empty() {
        "empty".to_string()
    } else if name.len() > MAX_NAME {
        format!("longer than {MAX_NAME} characters")
    } else if !name.as_bytes()[0].is_ascii_lowercase() && !name.as_bytes()[0].is_ascii_digit() {
        "not starting with a lower-case letter or a digit".to_string()
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        format!("holding {c:?} (allowed: a-z, 0-9, - and _)")
    } else {
        return Ok(());
    };
    Err(format!("{name:?} is not a shop name: {why}"))
}

fn bad_name(name: &str) -> Result<()> {
    check_name(name).map_err(StoreError::BadShop)
}

/// Where shops live beside a deployment's store.
enum Home {
    /// `DIR/shops`.
    Dir(PathBuf),
    /// The server URL before the database name, the database name, and
    /// the URL's query (`?…`, kept for every shop).
    Postgres {
        head: String,
        db: String,
        query: String,
    },
}

fn home(base: &str) -> Result<Home> {
    match parse_url(base)? {
        Location::SqliteFile(p) if !p.to_string_lossy().starts_with("file:") => {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            Ok(Home::Dir(dir.join("shops")))
        }
        Location::Postgres(u) => {
            let (url, query) = match u.split_once('?') {
                Some((a, q)) => (a.to_string(), format!("?{q}")),
                None => (u.clone(), String::new()),
            };
            let (scheme, rest) = url.split_once("://").expect("a postgres URL");
            let (head, db) = match rest.split_once('/') {
                Some((auth, db)) if !db.is_empty() => (format!("{scheme}://{auth}"), db),
                _ => {
                    return Err(StoreError::UnsupportedUrl {
                        url: crate::pg::redact(base),
                        reason: "shops need the URL to name its database (postgres://USER@HOST/DB)"
                            .into(),
                    })
                }
            };
            if db.len() + 2 + MAX_NAME > 63 || check_name(&db.replace("__", "_")).is_err() {
                return Err(StoreError::UnsupportedUrl {
                    url: crate::pg::redact(base),
                    reason: format!(
                        "shops need a database name of at most {} lower-case letters, digits, - and _ (they live in databases named {db}__SHOP)",
                        63 - 2 - MAX_NAME
                    ),
                });
            }
            Ok(Home::Postgres {
                head,
                db: db.to_string(),
                query,
            })
        }
        _ => Err(StoreError::UnsupportedUrl {
            url: crate::pg::redact(base),
            reason: "shops live beside a directory or PostgreSQL store, not an in-memory one"
                .into(),
        }),
    }
}

/// The store URL of shop `name` of the deployment whose store is `base`
/// (whether or not the shop exists). The default shop's is `base` itself.
pub fn url_of(base: &str, name: &str) -> Result<String> {
    if name == DEFAULT_SHOP {
        return Ok(base.to_string());
    }
    bad_name(name)?;
    Ok(match home(base)? {
        Home::Dir(d) => d.join(name).display().to_string(),
        Home::Postgres { head, db, query } => format!("{head}/{db}__{name}{query}"),
    })
}

/// The shops of a deployment, by name (the default shop not among them).
/// A store that cannot hold shops (in memory) has none.
pub fn list(base: &str) -> Result<Vec<String>> {
    let Ok(h) = home(base) else {
        return Ok(Vec::new());
    };
    let mut out = match h {
        Home::Dir(d) => match std::fs::read_dir(&d) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join(crate::DB_FILE).exists())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| check_name(n).is_ok() && n != DEFAULT_SHOP)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(StoreError::CreateDir {
                    path: d.display().to_string(),
                    source: e,
                })
            }
        },
        Home::Postgres { db, .. } => {
            let mut c = crate::pg::connect_url(base)?;
            let prefix = format!("{db}__");
            c.query("SELECT datname FROM pg_database", &[])?
                .iter()
                .filter_map(|r| {
                    r.get::<_, String>(0)
                        .strip_prefix(&prefix)
                        .map(str::to_string)
                })
                .filter(|n| check_name(n).is_ok() && n != DEFAULT_SHOP)
                .collect()
        }
    };
    out.sort();
    Ok(out)
}

/// Whether shop `name` exists.
pub fn exists(base: &str, name: &str) -> Result<bool> {
    if name == DEFAULT_SHOP {
        return Ok(true);
    }
    bad_name(name)?;
    Ok(list(base)?.iter().any(|n| n == name))
}

/// Creates shop `name`'s store (an error if it exists); returns its URL.
pub fn create(base: &str, name: &str) -> Result<String> {
    bad_name(name)?;
    if name == DEFAULT_SHOP {
        return Err(StoreError::UnsupportedUrl {
            url: crate::pg::redact(base),
            reason: format!("{DEFAULT_SHOP:?} is the deployment's own shop (its --store)"),
        });
    }
    if exists(base, name)? {
        return Err(StoreError::ShopExists(name.to_string()));
    }
    let url = url_of(base, name)?;
    if let Home::Postgres { db, .. } = home(base)? {
        let mut c = crate::pg::connect_url(base)?;
        c.batch_execute(&format!("CREATE DATABASE \"{db}__{name}\""))?;
    }
    // The schema (and, for a directory, the folder).
    crate::open(&url)?;
    Ok(url)
}

/// Deletes shop `name` and everything it holds (events, catalog, models,
/// logs). A PostgreSQL shop's open connections are closed (`WITH (FORCE)`):
/// its servers stop serving it at their next look at the registry.
pub fn delete(base: &str, name: &str) -> Result<()> {
    bad_name(name)?;
    if name == DEFAULT_SHOP {
        return Err(StoreError::UnsupportedUrl {
            url: crate::pg::redact(base),
            reason: format!("{DEFAULT_SHOP:?} is the deployment's own shop: it is not deleted"),
        });
    }
    if !exists(base, name)? {
        return Err(StoreError::UnknownShop(name.to_string()));
    }
    match home(base)? {
        Home::Dir(d) => {
            let dir = d.join(name);
            std::fs::remove_dir_all(&dir).map_err(|e| StoreError::CreateDir {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        Home::Postgres { db, .. } => {
            let mut c = crate::pg::connect_url(base)?;
            c.batch_execute(&format!("DROP DATABASE \"{db}__{name}\" WITH (FORCE)"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_identifiers() {
        for ok in ["acme", "a", "shop-2", "eu_north", "9lives"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "-x",
            "_x",
            "a.b",
            "../etc",
            "a/b",
            "a b",
            "é",
            "a%2f",
            &"x".repeat(33),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_directory_keeps_shops_in_its_shops_folder() {
        assert_eq!(
            url_of("/data/shop", "acme").unwrap(),
            "/data/shop/shops/acme"
        );
        assert_eq!(url_of("/data/shop", DEFAULT_SHOP).unwrap(), "/data/shop");
        assert!(url_of("/data/shop", "../x").is_err());
    }

    #[test]
    fn postgres_keeps_a_database_per_shop_with_the_query_kept() {
        assert_eq!(
            url_of("postgres://u:p@h:5432/aisle?sslmode=disable", "acme").unwrap(),
            "postgres://u:p@h:5432/aisle__acme?sslmode=disable"
        );
        assert!(url_of("postgres://u@h", "acme").is_err());
        assert!(url_of("postgres://u@h/Caps", "acme").is_err());
        assert!(url_of("sqlite::memory:", "acme").is_err());
    }

    #[test]
    fn shops_are_created_listed_and_deleted_in_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().display().to_string();
        crate::open(&base).unwrap();
        assert!(list(&base).unwrap().is_empty());
        create(&base, "b").unwrap();
        create(&base, "a").unwrap();
        assert!(matches!(create(&base, "a"), Err(StoreError::ShopExists(_))));
        assert!(create(&base, DEFAULT_SHOP).is_err());
        assert_eq!(list(&base).unwrap(), ["a", "b"]);
        delete(&base, "a").unwrap();
        assert!(!d.path().join("shops/a").exists());
        assert_eq!(list(&base).unwrap(), ["b"]);
        assert!(matches!(
            delete(&base, "a"),
            Err(StoreError::UnknownShop(_))
        ));
    }

    #[test]
    fn a_postgres_shop_is_a_database_of_its_own() {
        let db = crate::pg::ScratchDb::new();
        crate::open(&db.url).unwrap();
        create(&db.url, "acme").unwrap();
        assert_eq!(list(&db.url).unwrap(), ["acme"]);
        let url = url_of(&db.url, "acme").unwrap();
        let mut shop = crate::open_existing(&url).unwrap();
        shop.set_meta("k", "v").unwrap();
        // Open connections do not keep a shop from being deleted.
        delete(&db.url, "acme").unwrap();
        assert!(list(&db.url).unwrap().is_empty());
        assert!(crate::open_existing(&url).is_err());
    }
}
