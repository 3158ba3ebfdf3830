//! `POST /tenants/{tenant}/acl-rules/explain`: which rule (or the tenant default) decides, on
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestDb;

backend_tests!(
    the_tenant_default_decides_when_no_rule_matches,
    a_matching_rule_decides,
    deny_wins_over_allow_at_equal_priority,
    a_higher_priority_allow_beats_a_lower_deny,
    rules_for_another_identity_do_not_apply,
    placeholders_match_only_the_callers_own_identity,
    subscribe_is_checked_as_a_filter,
    an_invalid_topic_is_rejected_naming_topic,
);

async fn rule(db: &TestDb, tenant: &str, body: Value) -> String {
    let reply = db
        .admin(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/acl-rules"),
            Some(body),
        )
        .await;
    reply.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn explain(db: &TestDb, tenant: &str, question: Value) -> Value {
    let reply = db
        .admin(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/acl-rules/explain"),
            Some(question),
        )
        .await;
    reply.expect(StatusCode::OK).clone()
}

async fn publish(db: &TestDb, client_id: &str, username: Option<&str>, topic: &str) -> Value {
    explain(
        db,
        "acme",
        json!({"client_id": client_id, "username": username, "action": "publish", "topic": topic}),
    )
    .await
}

async fn the_tenant_default_decides_when_no_rule_matches(db: &TestDb) {
    db.tenant("acme").await;
    let answer = publish(db, "c1", None, "a/b").await;
    assert_eq!(
        answer,
        json!({"decision": "deny", "rule": null, "partial_deny": false})
    );
    db.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(json!({"default_effect": "allow"})),
    )
    .await
    .expect(StatusCode::OK);
    rule(
        db,
        "acme",
        json!({"effect": "deny", "action": "publish", "filter": "x/#"}),
    )
    .await;
    let answer = publish(db, "c1", None, "a/b").await;
    assert_eq!(answer["decision"], "allow");
    assert_eq!(answer["rule"], Value::Null);
}

async fn a_matching_rule_decides(db: &TestDb) {
    db.tenant("acme").await;
    let id = rule(
        db,
        "acme",
        json!({"effect": "allow", "action": "publish", "filter": "a/+"}),
    )
    .await;
    let answer = publish(db, "c1", None, "a/b").await;
    assert_eq!(answer["decision"], "allow");
    assert_eq!(answer["rule"], id.as_str());
    // `publish` rules do not govern subscribing.
    let answer = explain(
        db,
        "acme",
        json!({"client_id": "c1", "action": "subscribe", "topic": "a/b"}),
    )
    .await;
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["rule"], Value::Null);
}

async fn deny_wins_over_allow_at_equal_priority(db: &TestDb) {
    db.tenant("acme").await;
    rule(
        db,
        "acme",
        json!({"effect": "allow", "action": "all", "filter": "#", "priority": 5}),
    )
    .await;
    let deny = rule(
        db,
        "acme",
        json!({"effect": "deny", "action": "all", "filter": "secret/#", "priority": 5}),
    )
    .await;
    let answer = publish(db, "c1", None, "secret/plans").await;
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["rule"], deny.as_str());
    assert_eq!(
        publish(db, "c1", None, "public/news").await["decision"],
        "allow"
    );
}

async fn a_higher_priority_allow_beats_a_lower_deny(db: &TestDb) {
    db.tenant("acme").await;
    rule(
        db,
        "acme",
        json!({"effect": "deny", "action": "all", "filter": "secret/#", "priority": 1}),
    )
    .await;
    let allow = rule(
        db,
        "acme",
        json!({"effect": "allow", "action": "publish", "filter": "secret/ops", "priority": 2}),
    )
    .await;
    let answer = publish(db, "c1", None, "secret/ops").await;
    assert_eq!(answer["decision"], "allow");
    assert_eq!(answer["rule"], allow.as_str());
}

async fn rules_for_another_identity_do_not_apply(db: &TestDb) {
    db.tenant("acme").await;
    let for_alice = rule(
        db,
        "acme",
        json!({"effect": "allow", "action": "all", "filter": "#", "username": "alice"}),
    )
    .await;
    let for_c9 = rule(
        db,
        "acme",
        json!({"effect": "allow", "action": "all", "filter": "c9/#", "client_id": "c9"}),
    )
    .await;
    assert_eq!(
        publish(db, "c1", Some("alice"), "x").await["rule"],
        for_alice.as_str()
    );
    assert_eq!(
        publish(db, "c1", Some("bob"), "x").await["rule"],
        Value::Null
    );
    assert_eq!(
        publish(db, "c9", None, "c9/t").await["rule"],
        for_c9.as_str()
    );
    assert_eq!(publish(db, "c8", None, "c9/t").await["rule"], Value::Null);
}

async fn placeholders_match_only_the_callers_own_identity(db: &TestDb) {
    db.tenant("acme").await;
    let own = rule(
        db,
        "acme",
        json!({"effect": "allow", "action": "all", "filter": "devices/${clientid}/#"}),
    )
    .await;
    assert_eq!(
        publish(db, "sensor-1", None, "devices/sensor-1/temp").await["rule"],
        own.as_str()
    );
    let other = publish(db, "sensor-1", None, "devices/sensor-2/temp").await;
    assert_eq!(other["decision"], "deny");
    assert_eq!(other["rule"], Value::Null);
    // An identity with wildcard characters never widens the rule.
    let sneaky = explain(
        db,
        "acme",
        json!({"client_id": "#", "action": "subscribe", "topic": "devices/#"}),
    )
    .await;
    assert_eq!(sneaky["decision"], "deny");
    let sneaky = explain(
        db,
        "acme",
        json!({"client_id": "+", "action": "subscribe", "topic": "devices/+/temp"}),
    )
    .await;
    assert_eq!(sneaky["decision"], "deny");
}

async fn subscribe_is_checked_as_a_filter(db: &TestDb) {
    db.tenant("acme").await;
    let allow = rule(
        db,
        "acme",
        json!({"effect": "allow", "action": "subscribe", "filter": "sensors/#"}),
    )
    .await;
    let deny = rule(
        db,
        "acme",
        json!({"effect": "deny", "action": "subscribe", "filter": "sensors/secret", "priority": 1}),
    )
    .await;
    let question = |topic: &str| json!({"client_id": "c", "action": "subscribe", "topic": topic});
    let narrow = explain(db, "acme", question("sensors/+/temp")).await;
    assert_eq!(
        narrow,
        json!({"decision": "allow", "rule": allow, "partial_deny": false})
    );
    // The deny rule covers part of `sensors/#`: allowed, but deliveries are checked.
    let wide = explain(db, "acme", question("sensors/#")).await;
    assert_eq!(
        wide,
        json!({"decision": "allow", "rule": allow, "partial_deny": true})
    );
    let exact = explain(db, "acme", question("sensors/secret")).await;
    assert_eq!(exact["decision"], "deny");
    assert_eq!(exact["rule"], deny.as_str());
    // A filter wider than every allow rule falls to the default.
    let everything = explain(db, "acme", question("#")).await;
    assert_eq!(everything["decision"], "deny");
    assert_eq!(everything["rule"], Value::Null);
    // A shared subscription is checked on its filter.
    let shared = explain(db, "acme", question("$share/workers/sensors/secret")).await;
    assert_eq!(shared["rule"], deny.as_str());
}

async fn an_invalid_topic_is_rejected_naming_topic(db: &TestDb) {
    db.tenant("acme").await;
    let path = "/api/v1/tenants/acme/acl-rules/explain";
    for (action, topic) in [
        ("publish", "a/+"),
        ("publish", "a/#"),
        ("subscribe", "a/#/b"),
        ("subscribe", "$share/g"),
    ] {
        db.admin(
            Method::POST,
            path,
            Some(json!({"client_id": "c", "action": action, "topic": topic})),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, Some("topic"));
    }
    db.admin(
        Method::POST,
        path,
        Some(json!({"client_id": "c", "action": "all", "topic": "a"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("action"));
    db.admin(
        Method::POST,
        "/api/v1/tenants/ghost/acl-rules/explain",
        Some(json!({"client_id": "c", "action": "publish", "topic": "a"})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, None);
}
