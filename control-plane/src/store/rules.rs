//! Access rules of a tenant: allow or deny publishing or subscribing on a topic filter with
//! identity placeholders, optionally only for one user name or client id, ordered by priority.

use serde::Serialize;
use stratus_model::{ChangeEvent, TenantId};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Page, PageRequest, Store, StoreError, classify, new_id, now, on_pool, text_enum};

text_enum! {
    /// Allow or deny.
    RuleEffect {
        /// Permit.
        Allow = "allow",
        /// Refuse.
        Deny = "deny",
    }
}

text_enum! {
    /// What a rule governs.
    RuleAction {
        /// Publishing to matching topics.
        Publish = "publish",
        /// Subscribing to matching filters and receiving matching messages.
        Subscribe = "subscribe",
        /// Both.
        All = "all",
    }
}

impl From<RuleEffect> for stratus_policy::Effect {
    fn from(effect: RuleEffect) -> Self {
        match effect {
            RuleEffect::Allow => Self::Allow,
            RuleEffect::Deny => Self::Deny,
        }
    }
}

impl From<stratus_policy::Effect> for RuleEffect {
    fn from(effect: stratus_policy::Effect) -> Self {
        match effect {
            stratus_policy::Effect::Allow => Self::Allow,
            stratus_policy::Effect::Deny => Self::Deny,
        }
    }
}

impl From<RuleAction> for stratus_policy::Action {
    fn from(action: RuleAction) -> Self {
        match action {
            RuleAction::Publish => Self::Publish,
            RuleAction::Subscribe => Self::Subscribe,
            RuleAction::All => Self::All,
        }
    }
}

/// An access rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct AclRule {
    /// Rule id.
    pub id: String,
    /// Tenant slug.
    pub tenant: String,
    /// Allow or deny.
    #[sqlx(try_from = "String")]
    pub effect: RuleEffect,
    /// Publish, subscribe or all.
    #[sqlx(try_from = "String")]
    pub action: RuleAction,
    /// Topic filter; may contain `${clientid}`, `${username}` and `${tenant}`.
    #[schema(example = "devices/${clientid}/#")]
    pub filter: String,
    /// The rule applies only to this user name.
    pub username: Option<String>,
    /// The rule applies only to this client id.
    pub client_id: Option<String>,
    /// Higher runs first; at equal priority deny runs before allow.
    pub priority: i32,
    /// When the rule was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl AclRule {
    /// The rule as the edge and the explain endpoint evaluate it.
    pub fn to_policy(&self) -> Result<stratus_policy::AclRule, StoreError> {
        let filter = stratus_policy::TopicTemplate::parse(&self.filter)
            .map_err(|e| StoreError::Corrupt(format!("rule {}: {e}", self.id)))?;
        Ok(stratus_policy::AclRule {
            id: self.id.clone(),
            effect: self.effect.into(),
            action: self.action.into(),
            filter,
            username: self.username.clone(),
            client_id: self.client_id.clone(),
            priority: self.priority,
        })
    }
}

/// A rule to create (validated by the caller: the filter parses as a `TopicTemplate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAclRule {
    /// Allow or deny.
    pub effect: RuleEffect,
    /// What it governs.
    pub action: RuleAction,
    /// Topic filter with placeholders.
    pub filter: String,
    /// Only for this user name.
    pub username: Option<String>,
    /// Only for this client id.
    pub client_id: Option<String>,
    /// Priority.
    pub priority: i32,
}

/// The columns of [`AclRule`], as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, tenant, effect, action, filter, username, client_id, priority, created_at"
    };
}

impl Store {
    /// Creates a rule in the tenant.
    pub async fn create_rule(
        &self,
        tenant: &TenantId,
        new: &NewAclRule,
    ) -> Result<AclRule, StoreError> {
        let rule = AclRule {
            id: new_id(),
            tenant: tenant.as_str().to_owned(),
            effect: new.effect,
            action: new.action,
            filter: new.filter.clone(),
            username: new.username.clone(),
            client_id: new.client_id.clone(),
            priority: new.priority,
            created_at: now(),
        };
        on_pool!(self, db => sqlx::query(concat!(
            "INSERT INTO acl_rules (", columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&rule.id)
        .bind(&rule.tenant)
        .bind(rule.effect.as_str())
        .bind(rule.action.as_str())
        .bind(&rule.filter)
        .bind(rule.username.as_deref())
        .bind(rule.client_id.as_deref())
        .bind(rule.priority)
        .bind(rule.created_at)
        .execute(db)
        .await
        .map(|_| ()))
        .map_err(|e| classify(e, "rule"))?;
        self.emit(ChangeEvent::Rules(tenant.clone()));
        Ok(rule)
    }

    /// One rule of the tenant.
    pub async fn rule(&self, tenant: &TenantId, id: &str) -> Result<Option<AclRule>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM acl_rules WHERE tenant = $1 AND id = $2"
        );
        Ok(on_pool!(self, db => sqlx::query_as::<_, AclRule>(SQL)
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(db)
            .await)?)
    }

    /// The tenant's rules in id (creation) order.
    pub async fn list_rules(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<AclRule>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM acl_rules WHERE tenant = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows = on_pool!(self, db => sqlx::query_as::<_, AclRule>(SQL)
            .bind(tenant.as_str())
            .bind(page.after.as_deref())
            .bind(page.fetch())
            .fetch_all(db)
            .await)?;
        Ok(Page::from_rows(rows, page, |r| &r.id))
    }

    /// Every rule of the tenant (for evaluation).
    pub async fn all_rules(&self, tenant: &TenantId) -> Result<Vec<AclRule>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM acl_rules WHERE tenant = $1 ORDER BY id"
        );
        Ok(on_pool!(self, db => sqlx::query_as::<_, AclRule>(SQL)
            .bind(tenant.as_str())
            .fetch_all(db)
            .await)?)
    }

    /// Deletes a rule; false when the tenant has no such rule.
    pub async fn delete_rule(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, db => sqlx::query(
            "DELETE FROM acl_rules WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected()))?;
        if deleted > 0 {
            self.emit(ChangeEvent::Rules(tenant.clone()));
        }
        Ok(deleted > 0)
    }
}
