//! Tenants: the slug every other row is scoped by, its plan and status, and the defaults the
//! edge applies when no rule or credential decides.

use serde::Serialize;
use stratus_model::{ChangeEvent, TenantId};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Page, PageRequest, RuleEffect, Store, StoreError, classify, now, on_pool, text_enum};

text_enum! {
    /// Whether a tenant's clients may connect.
    TenantStatus {
        /// Serving.
        Active = "active",
        /// Every connection is refused; existing ones are closed.
        Suspended = "suspended",
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Tenant {
    /// DNS-label slug; the tenant's endpoint is `<slug>.<domain>`.
    #[schema(example = "acme")]
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The plan whose limits apply.
    pub plan: String,
    /// Serving or suspended.
    #[sqlx(try_from = "String")]
    pub status: TenantStatus,
    /// Effect of a publish or subscribe that no ACL rule matches.
    #[sqlx(try_from = "String")]
    pub default_effect: RuleEffect,
    /// Whether clients without credentials may connect.
    pub allow_anonymous: bool,
    /// When the tenant was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the tenant was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A tenant to create (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    /// Slug.
    pub slug: TenantId,
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: String,
    /// Status.
    pub status: TenantStatus,
    /// Effect when no ACL rule matches.
    pub default_effect: RuleEffect,
    /// Whether clients without credentials may connect.
    pub allow_anonymous: bool,
}

impl NewTenant {
    /// A tenant named after its slug, on the `free` plan, active.
    pub fn new(slug: TenantId, default_effect: RuleEffect, allow_anonymous: bool) -> Self {
        Self {
            name: slug.as_str().to_owned(),
            slug,
            plan: "free".to_owned(),
            status: TenantStatus::Active,
            default_effect,
            allow_anonymous,
        }
    }
}

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPatch {
    /// New display name.
    pub name: Option<String>,
    /// New plan.
    pub plan: Option<String>,
    /// New status.
    pub status: Option<TenantStatus>,
    /// New default effect.
    pub default_effect: Option<RuleEffect>,
    /// New anonymous access.
    pub allow_anonymous: Option<bool>,
}

/// The columns of [`Tenant`], as a literal for `concat!`.
macro_rules! columns {
    () => {
        "slug, name, plan, status, default_effect, allow_anonymous, created_at, updated_at"
    };
}

impl Store {
    /// Creates a tenant; a taken slug is a conflict on `slug`.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, StoreError> {
        let at = now();
        let tenant = Tenant {
            slug: new.slug.as_str().to_owned(),
            name: new.name.clone(),
            plan: new.plan.clone(),
            status: new.status,
            default_effect: new.default_effect,
            allow_anonymous: new.allow_anonymous,
            created_at: at,
            updated_at: at,
        };
        on_pool!(self, db => sqlx::query(
            "INSERT INTO tenants (slug, name, plan, status, default_effect, allow_anonymous, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&tenant.slug)
        .bind(&tenant.name)
        .bind(&tenant.plan)
        .bind(tenant.status.as_str())
        .bind(tenant.default_effect.as_str())
        .bind(tenant.allow_anonymous)
        .bind(at)
        .execute(db)
        .await
        .map(|_| ()))
        .map_err(|e| classify(e, "tenant"))?;
        self.emit(ChangeEvent::Tenant(new.slug.clone()));
        Ok(tenant)
    }

    /// Creates the tenant unless it exists (an existing tenant is left as it is). True when it
    /// was created.
    pub async fn ensure_tenant(&self, new: &NewTenant) -> Result<bool, StoreError> {
        let at = now();
        let done = on_pool!(self, db => sqlx::query(
            "INSERT INTO tenants (slug, name, plan, status, default_effect, allow_anonymous, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(new.slug.as_str())
        .bind(&new.name)
        .bind(&new.plan)
        .bind(new.status.as_str())
        .bind(new.default_effect.as_str())
        .bind(new.allow_anonymous)
        .bind(at)
        .execute(db)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| classify(e, "tenant"))?;
        if done > 0 {
            self.emit(ChangeEvent::Tenant(new.slug.clone()));
        }
        Ok(done > 0)
    }

    /// The tenant, if it exists.
    pub async fn tenant(&self, slug: &TenantId) -> Result<Option<Tenant>, StoreError> {
        const SQL: &str = concat!("SELECT ", columns!(), " FROM tenants WHERE slug = $1");
        Ok(on_pool!(self, db => sqlx::query_as::<_, Tenant>(SQL)
            .bind(slug.as_str())
            .fetch_optional(db)
            .await)?)
    }

    /// Tenants in slug order.
    pub async fn list_tenants(&self, page: &PageRequest) -> Result<Page<Tenant>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM tenants WHERE ($1 IS NULL OR slug > $1) ORDER BY slug LIMIT $2"
        );
        let rows = on_pool!(self, db => sqlx::query_as::<_, Tenant>(SQL)
            .bind(page.after.as_deref())
            .bind(page.fetch())
            .fetch_all(db)
            .await)?;
        Ok(Page::from_rows(rows, page, |t| &t.slug))
    }

    /// Applies `patch`; `None` when the tenant does not exist.
    pub async fn update_tenant(
        &self,
        slug: &TenantId,
        patch: &TenantPatch,
    ) -> Result<Option<Tenant>, StoreError> {
        const SQL: &str = concat!(
            "UPDATE tenants SET name = COALESCE($2, name), plan = COALESCE($3, plan), ",
            "status = COALESCE($4, status), default_effect = COALESCE($5, default_effect), ",
            "allow_anonymous = COALESCE($6, allow_anonymous), updated_at = $7 ",
            "WHERE slug = $1 RETURNING ",
            columns!()
        );
        let row = on_pool!(self, db => sqlx::query_as::<_, Tenant>(SQL)
            .bind(slug.as_str())
            .bind(patch.name.as_deref())
            .bind(patch.plan.as_deref())
            .bind(patch.status.map(TenantStatus::as_str))
            .bind(patch.default_effect.map(RuleEffect::as_str))
            .bind(patch.allow_anonymous)
            .bind(now())
            .fetch_optional(db)
            .await)
        .map_err(|e| classify(e, "tenant"))?;
        if row.is_some() {
            self.emit(ChangeEvent::Tenant(slug.clone()));
        }
        Ok(row)
    }

    /// Deletes the tenant and everything it owns; false when it did not exist.
    pub async fn delete_tenant(&self, slug: &TenantId) -> Result<bool, StoreError> {
        let _claims = self.device_write(slug);
        let deleted = on_pool!(self, db => sqlx::query("DELETE FROM tenants WHERE slug = $1")
            .bind(slug.as_str())
            .execute(db)
            .await
            .map(|r| r.rows_affected()))?;
        if deleted > 0 {
            self.emit(ChangeEvent::Tenant(slug.clone()));
        }
        Ok(deleted > 0)
    }
}
