//! `/api/v1/tenants/{tenant}/acl-rules`: access rules, and `explain`, which evaluates the
//! tenant's rules with the same code the edge enforces them with (`stratus_policy`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use stratus_policy::{DecidedBy, Identity, PolicySet, TopicTemplate};
use stratus_topics::{FilterSpec, TopicName};
use utoipa::ToSchema;

use super::auth::{Access, Principal};
use super::error::ApiError;
use super::extract::{JsonBody, ListParams, PathParams};
use super::paths::{ItemPath, TenantPath};
use super::responses::{ReadErrors, WriteErrors};
use super::validate::{self, MAX_IDENTITY};
use super::{AppState, TAG_RULES};
use crate::store::{AclRule, NewAclRule, Page, RuleAction, RuleEffect};

/// Longest filter or topic accepted (characters; the policy crate also limits bytes).
const MAX_FILTER: usize = 1024;
/// Longest client id, user name or topic `explain` accepts (characters).
const MAX_TOPIC: usize = 4096;

/// A rule to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAclRule {
    /// Allow or deny.
    effect: RuleEffect,
    /// Publish, subscribe or all.
    action: RuleAction,
    /// Topic filter; `${clientid}`, `${username}` and `${tenant}` stand for one whole or partial
    /// level of the connecting identity (an identity containing `+`, `#` or `/` never matches).
    #[schema(min_length = 1, max_length = 1024, example = "devices/${clientid}/#")]
    filter: String,
    /// Only for this user name.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256
    )]
    username: Option<String>,
    /// Only for this client id.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256
    )]
    client_id: Option<String>,
    /// Higher runs first; at equal priority deny runs before allow (default 0).
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "validate::optional_whole_number")]
    priority: Option<i32>,
}

impl CreateAclRule {
    fn validate(self) -> Result<NewAclRule, ApiError> {
        validate::length("filter", &self.filter, 1, MAX_FILTER)?;
        TopicTemplate::parse(&self.filter)
            .map_err(|e| ApiError::unprocessable("filter", format!("filter: {e}")))?;
        validate::optional(self.username.as_deref(), |v| {
            validate::plain("username", v, MAX_IDENTITY)
        })?;
        validate::optional(self.client_id.as_deref(), |v| {
            validate::plain("client_id", v, MAX_IDENTITY)
        })?;
        let priority = self.priority.unwrap_or(0);
        validate::priority("priority", priority)?;
        Ok(NewAclRule {
            effect: self.effect,
            action: self.action,
            filter: self.filter,
            username: self.username,
            client_id: self.client_id,
            priority,
        })
    }
}

/// What `explain` evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExplainAction {
    /// May the client publish to `topic`?
    Publish,
    /// May the client subscribe to `topic` (a filter, possibly `$share/{group}/{filter}`)?
    Subscribe,
}

/// A question for `explain`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainRequest {
    /// The client id of the connection.
    #[schema(max_length = 4096)]
    client_id: String,
    /// Its user name, if it has one.
    #[schema(max_length = 4096)]
    username: Option<String>,
    /// Publish or subscribe.
    action: ExplainAction,
    /// A topic name for publish, a topic filter for subscribe.
    #[schema(
        min_length = 1,
        max_length = 4096,
        example = "devices/sensor-1/temperature"
    )]
    topic: String,
}

/// The decision and what made it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExplainResponse {
    /// Allow or deny.
    decision: RuleEffect,
    /// The id of the rule that decided, or `null` when the tenant's default effect decided.
    rule: Option<String>,
    /// For an allowed subscribe: a deny rule covers part of the filter, so each message is
    /// checked at delivery and some are withheld.
    partial_deny: bool,
}

/// Create a rule. Connected clients are re-checked within seconds.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/acl-rules", tag = TAG_RULES,
    params(TenantPath), request_body = CreateAclRule,
    responses((status = 201, description = "Created", body = AclRule), WriteErrors))]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    JsonBody(body): JsonBody<CreateAclRule>,
) -> Result<(StatusCode, Json<AclRule>), ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Write)
        .await?;
    let new = body.validate()?;
    let rule = state.store.create_rule(&tenant, &new).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// List the tenant's rules in creation order.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/acl-rules", tag = TAG_RULES,
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of rules", body = Page<AclRule>), ReadErrors))]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    params: ListParams,
) -> Result<Json<Page<AclRule>>, ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Read)
        .await?;
    Ok(Json(state.store.list_rules(&tenant, &params.page()).await?))
}

/// Get a rule.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/acl-rules/{id}", tag = TAG_RULES,
    params(ItemPath),
    responses((status = 200, description = "The rule", body = AclRule), ReadErrors))]
pub(crate) async fn get_rule(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<Json<AclRule>, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Read)?;
    let found = state.store.rule(&tenant, &path.id).await?;
    found.map(Json).ok_or(ApiError::NotFound("rule"))
}

/// Delete a rule.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/acl-rules/{id}", tag = TAG_RULES,
    params(ItemPath),
    responses((status = 204, description = "Deleted"), ReadErrors))]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Write)?;
    if state.store.delete_rule(&tenant, &path.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("rule"))
    }
}

/// Explain what the tenant's rules decide for a client publishing to a topic or subscribing to
/// a filter, and which rule (or the tenant default) decided it.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/acl-rules/explain", tag = TAG_RULES,
    params(TenantPath), request_body = ExplainRequest,
    responses((status = 200, description = "The decision", body = ExplainResponse), WriteErrors))]
pub(crate) async fn explain(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    JsonBody(body): JsonBody<ExplainRequest>,
) -> Result<Json<ExplainResponse>, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Read)?;
    validate::length("client_id", &body.client_id, 0, MAX_TOPIC)?;
    validate::optional(body.username.as_deref(), |v| {
        validate::length("username", v, 0, MAX_TOPIC)
    })?;
    validate::length("topic", &body.topic, 1, MAX_TOPIC)?;
    let Some(record) = state.store.tenant(&tenant).await? else {
        return Err(ApiError::NotFound("tenant"));
    };
    let rules = state
        .store
        .all_rules(&tenant)
        .await?
        .iter()
        .map(AclRule::to_policy)
        .collect::<Result<Vec<_>, _>>()?;
    let policy = PolicySet::new(rules, record.default_effect.into());
    let who = Identity {
        tenant: tenant.as_str(),
        client_id: &body.client_id,
        username: body.username.as_deref(),
    };
    let (decision, partial_deny) = match body.action {
        ExplainAction::Publish => {
            let topic = TopicName::try_from(body.topic.as_str())
                .map_err(|e| ApiError::unprocessable("topic", format!("topic: {e}")))?;
            (policy.check_publish(&who, &topic), false)
        }
        ExplainAction::Subscribe => {
            // A shared subscription is checked on its filter, as the edge does.
            let spec = FilterSpec::parse(body.topic.as_str().into())
                .map_err(|e| ApiError::unprocessable("topic", format!("topic: {e}")))?;
            policy.check_subscribe(&who, &spec.filter)
        }
    };
    Ok(Json(ExplainResponse {
        decision: decision.effect.into(),
        rule: match decision.decided_by {
            DecidedBy::Rule(id) => Some(id),
            DecidedBy::TenantDefault => None,
        },
        partial_deny,
    }))
}
