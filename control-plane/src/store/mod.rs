//! The control plane's storage: one [`Store`] over PostgreSQL (the clustered shape) or SQLite
//! (`stratus dev`), with the same SQL for both.
//!
//! Every query is written once and compiled for each backend by [`on_pool!`]; queries are checked
//! at run time (`sqlx::query_as`), so building needs no database. Ids are UUIDv7 strings and
//! timestamps are set by the control plane, so both backends store the same values. Constraint
//! violations are turned into [`StoreError::Conflict`] / [`StoreError::Invalid`] naming the field,
//! where the query runs. Every successful change emits a [`ChangeEvent`] (see [`Store::changes`]).

mod api_keys;
mod claims;
mod devices;
mod directory;
mod jwt_keys;
mod page;
mod rules;
mod tenants;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::ErrorKind;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use stratus_model::ChangeEvent;
use stratus_model::TenantId;
use time::OffsetDateTime;
use tokio::sync::broadcast;

pub use api_keys::{ApiKey, ApiKeyAuth, ApiKeyScope, NewApiKey};
pub use devices::{Device, DevicePatch, NewDevice};
pub use jwt_keys::{JwtKey, KeyAlgorithm, NewJwtKey};
pub use page::{MAX_PAGE_LIMIT, Page, PageRequest};
pub use rules::{AclRule, NewAclRule, RuleAction, RuleEffect};
pub use tenants::{NewTenant, Tenant, TenantPatch, TenantStatus};

/// How many change events a slow subscriber may fall behind before it sees `Lagged` (and must
/// then drop every cached answer).
const EVENT_CAPACITY: usize = 1024;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint: another row already has this value.
    #[error("another {entity} already has this {field}")]
    Conflict {
        /// The kind of row ("device", "tenant", ...).
        entity: &'static str,
        /// The request field holding the conflicting value.
        field: &'static str,
    },
    /// A check constraint: the row would break an invariant.
    #[error("{message}")]
    Invalid {
        /// The request field to change.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// A row the operation refers to does not exist (e.g. the tenant was deleted meanwhile).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A stored value does not parse (the database was changed outside the control plane).
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The operating system's random number generator failed.
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
    /// The store could not be opened (e.g. the SQLite directory cannot be created).
    #[error("cannot open the store: {0}")]
    Open(String),
}

/// The database behind a [`Store`].
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$db` bound to the store's pool. The body is compiled once per backend, so
/// one query text serves both.
macro_rules! on_pool {
    ($store:expr, $db:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Postgres($db) => $body,
            $crate::store::Pool::Sqlite($db) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Declares an enum stored as TEXT (with a CHECK constraint) and serialized with the same text.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// The stored and serialized text.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text ),+ }
            }
        }

        // Written out because the derive does not see `serde(rename)` through `macro_rules!`.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$( $text ),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl TryFrom<String> for $name {
            type Error = $crate::store::StoreError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                match s.as_str() {
                    $( $text => Ok(Self::$variant), )+
                    other => Err($crate::store::StoreError::Corrupt(format!(
                        "{other:?} is not a {}", stringify!($name)
                    ))),
                }
            }
        }
    };
}
pub(crate) use text_enum;

/// The control plane's database, and the change events of everything written through it.
#[derive(Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    events: broadcast::Sender<ChangeEvent>,
    /// SQLite only: tenants known to have no device binding a client id.
    claims: Option<claims::ClaimCache>,
}

impl Store {
    /// Opens (creating if missing) the SQLite database at `path` and applies the migrations.
    pub(crate) async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self::with_pool(Pool::Sqlite(pool)))
    }

    /// Connects to PostgreSQL at `url` and applies the migrations.
    pub(crate) async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self::with_pool(Pool::Postgres(pool)))
    }

    fn with_pool(pool: Pool) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let claims = matches!(pool, Pool::Sqlite(_)).then(claims::ClaimCache::default);
        Self {
            pool,
            events,
            claims,
        }
    }

    /// Marks a write of the tenant's devices for the claim cache (see `claims.rs`); keep the
    /// guard until the write is over.
    pub(crate) fn device_write(&self, tenant: &TenantId) -> Option<claims::WriteGuard<'_>> {
        self.claims.as_ref().map(|c| c.writing(tenant))
    }

    /// The claim cache, when this backend keeps one.
    pub(crate) fn claim_cache(&self) -> Option<&claims::ClaimCache> {
        self.claims.as_ref()
    }

    /// Change events from now on: one per successful change, after it is committed.
    pub fn changes(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    /// Closes every database connection; later operations fail.
    pub async fn close(&self) {
        on_pool!(self, db => db.close().await)
    }

    /// Which database this is: `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    pub(crate) fn emit(&self, event: ChangeEvent) {
        // No receiver is not an error: nobody caches anything yet.
        let _ = self.events.send(event);
    }
}

/// A new row id: UUIDv7, so ids sort by creation time.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The current time at the precision both databases keep (microseconds), so a returned row
/// equals the stored one.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// A constraint and what it means for a request: PostgreSQL reports the constraint name, SQLite
/// the columns (unique) or the name (check).
struct Constraint {
    name: &'static str,
    sqlite_columns: &'static str,
    field: &'static str,
    message: &'static str,
}

const CONSTRAINTS: &[Constraint] = &[
    Constraint {
        name: "tenants_pkey",
        sqlite_columns: "tenants.slug",
        field: "slug",
        message: "",
    },
    Constraint {
        name: "devices_username_unique",
        sqlite_columns: "devices.tenant, devices.username",
        field: "username",
        message: "",
    },
    Constraint {
        name: "devices_client_id_unique",
        sqlite_columns: "devices.tenant, devices.client_id",
        field: "client_id",
        message: "",
    },
    Constraint {
        name: "devices_cert_fingerprint_unique",
        sqlite_columns: "devices.tenant, devices.cert_fingerprint",
        field: "cert_fingerprint",
        message: "",
    },
    Constraint {
        name: "devices_cert_subject_unique",
        sqlite_columns: "devices.tenant, devices.cert_subject",
        field: "cert_subject",
        message: "",
    },
    Constraint {
        name: "devices_password_needs_username",
        sqlite_columns: "",
        field: "username",
        message: "a device with a password needs a username",
    },
    Constraint {
        name: "devices_jwt_needs_username",
        sqlite_columns: "",
        field: "username",
        message: "a device that authenticates with a JWT needs a username",
    },
];

/// Turns a database error into the request's error: a constraint names its field, a missing
/// parent row is "not found"; anything else stays a database error.
pub(crate) fn classify(err: sqlx::Error, entity: &'static str) -> StoreError {
    let sqlx::Error::Database(db) = &err else {
        return StoreError::Database(err);
    };
    let message = db.message();
    let find = |by_columns: bool| {
        CONSTRAINTS.iter().find(|c| {
            db.constraint() == Some(c.name)
                || (by_columns
                    && !c.sqlite_columns.is_empty()
                    && message.ends_with(c.sqlite_columns))
                || (!by_columns && message.ends_with(c.name))
        })
    };
    match db.kind() {
        ErrorKind::UniqueViolation => match find(true) {
            Some(c) => StoreError::Conflict {
                entity,
                field: c.field,
            },
            None => StoreError::Database(err),
        },
        ErrorKind::CheckViolation => match find(false) {
            Some(c) => StoreError::Invalid {
                field: c.field,
                message: c.message,
            },
            None => StoreError::Database(err),
        },
        ErrorKind::ForeignKeyViolation => StoreError::NotFound("tenant"),
        _ => StoreError::Database(err),
    }
}
