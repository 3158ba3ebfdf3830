//! The store and the edge's `Directory` view of it, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod support;

use stratus_control_plane::{
    ApiKeyScope, DevicePatch, NewAclRule, NewApiKey, NewDevice, NewJwtKey, NewTenant, PageRequest,
    RuleAction, RuleEffect, StoreError, TenantPatch, TenantStatus, hash_password,
};
use stratus_model::{ChangeEvent, Directory, TenantId};
use support::{RSA_2048_PEM, TestDb};

fn tid(slug: &str) -> TenantId {
    TenantId::new(slug).unwrap()
}

async fn with_tenant(db: &TestDb, slug: &str) -> TenantId {
    let id = tid(slug);
    db.cp
        .store()
        .create_tenant(&NewTenant::new(id.clone(), RuleEffect::Deny, false))
        .await
        .unwrap();
    id
}

fn device(username: &str) -> NewDevice {
    NewDevice {
        username: Some(username.to_owned()),
        enabled: true,
        ..NewDevice::default()
    }
}

backend_tests!(
    tenants_round_trip_through_create_get_list_update_delete,
    ensure_tenant_creates_once_and_keeps_later_changes,
    a_taken_slug_is_a_conflict_on_slug,
    device_uniqueness_conflicts_name_their_field,
    a_password_without_a_username_is_refused_by_the_database,
    device_patch_sets_clears_and_keeps_fields,
    pages_walk_every_row_once,
    deleting_a_tenant_removes_everything_it_owns,
    writing_into_a_missing_tenant_is_not_found,
    directory_finds_devices_by_username_certificate_and_client_id,
    directory_reads_tenant_rules_and_jwt_keys,
    every_mutation_emits_its_change_event,
    api_keys_authenticate_until_revoked,
    client_id_claims_follow_every_device_write_at_once,
);

/// The claim lookup the edge runs on every CONNECT sees each device write as soon as the write
/// returns (SQLite remembers tenants without bindings; every write must make it forget).
async fn client_id_claims_follow_every_device_write_at_once(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let claimants = |id: &'static str| {
        let acme = acme.clone();
        async move {
            store
                .devices_claiming_client_id(&acme, id)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    // No device binds anything: asked twice (the second answer may come from memory).
    let plain = store.create_device(&acme, &device("plain")).await.unwrap();
    assert!(claimants("c-1").await.is_empty());
    assert!(claimants("c-1").await.is_empty());
    // Binding by update, by creation, by pattern; unbinding by update and deletion.
    let patch = DevicePatch {
        client_id: Some(Some("c-1".to_owned())),
        ..DevicePatch::default()
    };
    store.update_device(&acme, &plain.id, &patch).await.unwrap();
    assert_eq!(claimants("c-1").await, vec![plain.id.clone()]);
    let unbind = DevicePatch {
        client_id: Some(None),
        ..DevicePatch::default()
    };
    store
        .update_device(&acme, &plain.id, &unbind)
        .await
        .unwrap();
    assert!(claimants("c-1").await.is_empty());
    assert!(claimants("c-1").await.is_empty());
    let bound = store
        .create_device(
            &acme,
            &NewDevice {
                client_id: Some("c-2".to_owned()),
                ..device("bound")
            },
        )
        .await
        .unwrap();
    assert_eq!(claimants("c-2").await, vec![bound.id.clone()]);
    store.delete_device(&acme, &bound.id).await.unwrap();
    assert!(claimants("c-2").await.is_empty());
    assert!(claimants("c-9").await.is_empty());
    let pattern = store
        .create_device(
            &acme,
            &NewDevice {
                client_id_pattern: Some("s-*".to_owned()),
                ..device("pattern")
            },
        )
        .await
        .unwrap();
    assert_eq!(claimants("s-9").await, vec![pattern.id.clone()]);
    // Deleting and recreating the tenant starts from nothing.
    store.delete_tenant(&acme).await.unwrap();
    let acme = with_tenant(db, "acme").await;
    assert!(
        store
            .devices_claiming_client_id(&acme, "s-9")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn tenants_round_trip_through_create_get_list_update_delete(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let got = store.tenant(&acme).await.unwrap().unwrap();
    assert_eq!(got.slug, "acme");
    assert_eq!(got.plan, "free");
    assert_eq!(got.status, TenantStatus::Active);
    assert_eq!(got.default_effect, RuleEffect::Deny);
    assert!(!got.allow_anonymous);

    let patch = TenantPatch {
        name: Some("Acme Corp".to_owned()),
        status: Some(TenantStatus::Suspended),
        allow_anonymous: Some(true),
        ..TenantPatch::default()
    };
    let updated = store.update_tenant(&acme, &patch).await.unwrap().unwrap();
    assert_eq!(updated.name, "Acme Corp");
    assert_eq!(updated.status, TenantStatus::Suspended);
    assert!(updated.allow_anonymous);
    assert_eq!(
        updated.default_effect,
        RuleEffect::Deny,
        "untouched field kept"
    );
    assert_eq!(updated.created_at, got.created_at);
    assert_eq!(store.tenant(&acme).await.unwrap().unwrap(), updated);

    let page = store.list_tenants(&PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items, vec![updated]);
    assert_eq!(page.next_cursor, None);

    assert!(store.delete_tenant(&acme).await.unwrap());
    assert!(!store.delete_tenant(&acme).await.unwrap());
    assert_eq!(store.tenant(&acme).await.unwrap(), None);
    assert_eq!(
        store.update_tenant(&acme, &patch).await.unwrap(),
        None,
        "patching a missing tenant finds nothing"
    );
}

async fn ensure_tenant_creates_once_and_keeps_later_changes(db: &TestDb) {
    let dev = tid("dev");
    assert!(
        db.cp
            .ensure_tenant(&dev, stratus_policy::Effect::Allow, true)
            .await
            .unwrap()
    );
    let patch = TenantPatch {
        default_effect: Some(RuleEffect::Deny),
        ..TenantPatch::default()
    };
    db.cp.store().update_tenant(&dev, &patch).await.unwrap();
    assert!(
        !db.cp
            .ensure_tenant(&dev, stratus_policy::Effect::Allow, true)
            .await
            .unwrap()
    );
    let record = db.cp.directory().tenant(&dev).await.unwrap().unwrap();
    assert_eq!(record.default_effect, stratus_policy::Effect::Deny);
    assert!(record.allow_anonymous);
}

async fn a_taken_slug_is_a_conflict_on_slug(db: &TestDb) {
    with_tenant(db, "acme").await;
    let err = db
        .cp
        .store()
        .create_tenant(&NewTenant::new(tid("acme"), RuleEffect::Allow, true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "slug", .. }),
        "{err:?}"
    );
}

async fn device_uniqueness_conflicts_name_their_field(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let other = with_tenant(db, "other").await;
    let fingerprint = "ab".repeat(32);
    let first = NewDevice {
        client_id: Some("sensor-1".to_owned()),
        cert_fingerprint: Some(fingerprint.clone()),
        cert_subject: Some("CN=sensor-1".to_owned()),
        ..device("alice")
    };
    let created = store.create_device(&acme, &first).await.unwrap();

    let cases = [
        ("username", device("alice")),
        (
            "client_id",
            NewDevice {
                client_id: Some("sensor-1".to_owned()),
                ..device("bob")
            },
        ),
        (
            "cert_fingerprint",
            NewDevice {
                cert_fingerprint: Some(fingerprint.clone()),
                ..device("bob")
            },
        ),
        (
            "cert_subject",
            NewDevice {
                cert_subject: Some("CN=sensor-1".to_owned()),
                ..device("bob")
            },
        ),
    ];
    for (field, new) in cases {
        let err = store.create_device(&acme, &new).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
    }
    // The same values are free in another tenant.
    store.create_device(&other, &first).await.unwrap();

    // An update into a taken value conflicts too.
    let bob = store.create_device(&acme, &device("bob")).await.unwrap();
    let patch = DevicePatch {
        username: Some(Some("alice".to_owned())),
        ..DevicePatch::default()
    };
    let err = store
        .update_device(&acme, &bob.id, &patch)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                field: "username",
                ..
            }
        ),
        "{err:?}"
    );
    assert_ne!(created.id, bob.id);
}

async fn a_password_without_a_username_is_refused_by_the_database(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let hash = hash_password("pw".to_owned()).await.unwrap();
    let new = NewDevice {
        password: Some(hash),
        ..device("alice")
    };
    let alice = store.create_device(&acme, &new).await.unwrap();
    assert!(alice.has_password);
    let patch = DevicePatch {
        username: Some(None),
        ..DevicePatch::default()
    };
    let err = store
        .update_device(&acme, &alice.id, &patch)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "username",
                ..
            }
        ),
        "{err:?}"
    );
    let jwt_only = NewDevice {
        jwt: true,
        enabled: true,
        ..NewDevice::default()
    };
    let err = store.create_device(&acme, &jwt_only).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "username",
                ..
            }
        ),
        "{err:?}"
    );
}

async fn device_patch_sets_clears_and_keeps_fields(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let new = NewDevice {
        name: Some("Boiler".to_owned()),
        client_id: Some("boiler-1".to_owned()),
        ..device("boiler")
    };
    let created = store.create_device(&acme, &new).await.unwrap();
    let patch = DevicePatch {
        name: Some(None),
        client_id_pattern: Some(Some("boiler-*".to_owned())),
        enabled: Some(false),
        ..DevicePatch::default()
    };
    let updated = store
        .update_device(&acme, &created.id, &patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name, None, "null clears");
    assert_eq!(updated.client_id_pattern.as_deref(), Some("boiler-*"));
    assert_eq!(
        updated.client_id.as_deref(),
        Some("boiler-1"),
        "absent keeps"
    );
    assert_eq!(updated.username.as_deref(), Some("boiler"));
    assert!(!updated.enabled);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(
        store.device(&acme, &created.id).await.unwrap().unwrap(),
        updated
    );
    assert_eq!(
        store
            .update_device(&acme, "no-such-device", &patch)
            .await
            .unwrap(),
        None
    );
}

async fn pages_walk_every_row_once(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .create_device(&acme, &device(&format!("d{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut request = PageRequest::first(2);
    loop {
        let page = store.list_devices(&acme, &request).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|d| d.id));
        match page.next_cursor {
            Some(cursor) => request.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, ids, "creation order, each once");
}

async fn deleting_a_tenant_removes_everything_it_owns(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let d = store.create_device(&acme, &device("alice")).await.unwrap();
    let rule = NewAclRule {
        effect: RuleEffect::Allow,
        action: RuleAction::All,
        filter: "#".to_owned(),
        username: None,
        client_id: None,
        priority: 0,
    };
    store.create_rule(&acme, &rule).await.unwrap();
    let (_, secret) = store
        .create_api_key(
            &acme,
            &NewApiKey {
                name: "ci".to_owned(),
                scope: ApiKeyScope::Write,
            },
        )
        .await
        .unwrap();
    assert!(store.delete_tenant(&acme).await.unwrap());
    // Recreating the slug starts empty.
    with_tenant(db, "acme").await;
    assert_eq!(store.device(&acme, &d.id).await.unwrap(), None);
    assert!(store.all_rules(&acme).await.unwrap().is_empty());
    assert_eq!(
        store.authenticate_api_key(secret.expose()).await.unwrap(),
        None
    );
}

async fn writing_into_a_missing_tenant_is_not_found(db: &TestDb) {
    let err = db
        .cp
        .store()
        .create_device(&tid("ghost"), &device("alice"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("tenant")), "{err:?}");
}

async fn directory_finds_devices_by_username_certificate_and_client_id(db: &TestDb) {
    let store = db.cp.store();
    let dir = db.cp.directory();
    let acme = with_tenant(db, "acme").await;
    let other = with_tenant(db, "other").await;
    let hash = hash_password("s3cret".to_owned()).await.unwrap();
    let alice = store
        .create_device(
            &acme,
            &NewDevice {
                password: Some(hash.clone()),
                client_id: Some("alice-1".to_owned()),
                cert_fingerprint: Some("cd".repeat(32)),
                cert_subject: Some("CN=alice".to_owned()),
                ..device("alice")
            },
        )
        .await
        .unwrap();
    let fleet = store
        .create_device(
            &acme,
            &NewDevice {
                client_id_pattern: Some("sensor-*".to_owned()),
                ..device("fleet")
            },
        )
        .await
        .unwrap();
    store
        .create_device(&other, &NewDevice { ..device("alice") })
        .await
        .unwrap();

    let found = dir
        .device_by_username(&acme, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(found.tenant, acme);
    assert_eq!(found.password_hash.as_deref(), Some(hash.as_str()));
    assert!(found.enabled);
    assert_eq!(dir.device_by_username(&acme, "nobody").await.unwrap(), None);

    let by_fp = dir
        .device_by_certificate(&acme, &"CD".repeat(32), "CN=whatever")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        by_fp.id, alice.id,
        "fingerprints compare case-insensitively"
    );
    let by_subject = dir
        .device_by_certificate(&acme, &"00".repeat(32), "CN=alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_subject.id, alice.id);
    assert_eq!(
        dir.device_by_certificate(&other, &"cd".repeat(32), "CN=alice")
            .await
            .unwrap(),
        None,
        "another tenant's certificate is not found"
    );

    let claim = |id: &'static str| {
        let dir = dir.clone();
        let acme = acme.clone();
        async move {
            dir.devices_claiming_client_id(&acme, id)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(claim("alice-1").await, vec![alice.id.clone()]);
    assert_eq!(claim("sensor-42").await, vec![fleet.id.clone()]);
    assert!(claim("unclaimed").await.is_empty());
}

async fn directory_reads_tenant_rules_and_jwt_keys(db: &TestDb) {
    let store = db.cp.store();
    let dir = db.cp.directory();
    let acme = with_tenant(db, "acme").await;
    let record = dir.tenant(&acme).await.unwrap().unwrap();
    assert_eq!(record.id, acme);
    assert_eq!(record.status, stratus_model::TenantStatus::Active);
    assert_eq!(record.default_effect, stratus_policy::Effect::Deny);
    assert_eq!(dir.tenant(&tid("ghost")).await.unwrap(), None);

    let rule = store
        .create_rule(
            &acme,
            &NewAclRule {
                effect: RuleEffect::Deny,
                action: RuleAction::Subscribe,
                filter: "test/nosubscribe".to_owned(),
                username: Some("u".to_owned()),
                client_id: None,
                priority: 7,
            },
        )
        .await
        .unwrap();
    let rules = dir.acl_rules(&acme).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id, rule.id);
    assert_eq!(rules[0].effect, stratus_policy::Effect::Deny);
    assert_eq!(rules[0].action, stratus_policy::Action::Subscribe);
    assert_eq!(rules[0].filter, "test/nosubscribe");
    assert_eq!(rules[0].username.as_deref(), Some("u"));
    assert_eq!(rules[0].priority, 7);

    let key = store
        .create_jwt_key(
            &acme,
            &NewJwtKey {
                algorithm: stratus_control_plane::KeyAlgorithm::Rs256,
                public_key_pem: RSA_2048_PEM.to_owned(),
                audience: Some("mqtt".to_owned()),
            },
        )
        .await
        .unwrap();
    let keys = dir.jwt_keys(&acme).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, key.id);
    assert_eq!(keys[0].algorithm, stratus_model::JwtAlgorithm::RS256);
    assert_eq!(keys[0].public_key_pem, RSA_2048_PEM);
    assert_eq!(keys[0].audience.as_deref(), Some("mqtt"));
}

async fn every_mutation_emits_its_change_event(db: &TestDb) {
    let store = db.cp.store();
    let mut events = db.cp.directory().changes();
    let acme = with_tenant(db, "acme").await;
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::Tenant(acme.clone())
    );

    let d = store.create_device(&acme, &device("alice")).await.unwrap();
    let device_event = ChangeEvent::Device {
        tenant: acme.clone(),
        device_id: d.id.clone(),
    };
    assert_eq!(events.try_recv().unwrap(), device_event);
    let patch = DevicePatch {
        enabled: Some(false),
        ..DevicePatch::default()
    };
    store.update_device(&acme, &d.id, &patch).await.unwrap();
    assert_eq!(events.try_recv().unwrap(), device_event);
    store.delete_device(&acme, &d.id).await.unwrap();
    assert_eq!(events.try_recv().unwrap(), device_event);

    let rule = NewAclRule {
        effect: RuleEffect::Allow,
        action: RuleAction::Publish,
        filter: "a/b".to_owned(),
        username: None,
        client_id: None,
        priority: 0,
    };
    let r = store.create_rule(&acme, &rule).await.unwrap();
    assert_eq!(events.try_recv().unwrap(), ChangeEvent::Rules(acme.clone()));
    store.delete_rule(&acme, &r.id).await.unwrap();
    assert_eq!(events.try_recv().unwrap(), ChangeEvent::Rules(acme.clone()));

    let k = store
        .create_jwt_key(
            &acme,
            &NewJwtKey {
                algorithm: stratus_control_plane::KeyAlgorithm::Rs256,
                public_key_pem: RSA_2048_PEM.to_owned(),
                audience: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::JwtKeys(acme.clone())
    );
    store.delete_jwt_key(&acme, &k.id).await.unwrap();
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::JwtKeys(acme.clone())
    );

    store
        .update_tenant(
            &acme,
            &TenantPatch {
                allow_anonymous: Some(true),
                ..TenantPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::Tenant(acme.clone())
    );
    store.delete_tenant(&acme).await.unwrap();
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::Tenant(acme.clone())
    );

    // Failed or no-op changes emit nothing.
    assert!(!store.delete_device(&acme, &d.id).await.unwrap());
    assert!(!store.delete_tenant(&acme).await.unwrap());
    assert!(store.create_device(&acme, &device("x")).await.is_err());
    assert!(events.try_recv().is_err(), "no further events");
}

async fn api_keys_authenticate_until_revoked(db: &TestDb) {
    let store = db.cp.store();
    let acme = with_tenant(db, "acme").await;
    let new = NewApiKey {
        name: "deploy".to_owned(),
        scope: ApiKeyScope::Read,
    };
    let (key, secret) = store.create_api_key(&acme, &new).await.unwrap();
    assert_eq!(key.last4, secret.expose()[secret.expose().len() - 4..]);
    let auth = store
        .authenticate_api_key(secret.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.tenant, acme);
    assert_eq!(auth.scope, ApiKeyScope::Read);
    assert_eq!(auth.id, key.id);
    let mut forged = secret.expose().to_owned();
    forged.pop();
    forged.push('x');
    assert_eq!(store.authenticate_api_key(&forged).await.unwrap(), None);
    assert!(store.delete_api_key(&acme, &key.id).await.unwrap());
    assert_eq!(
        store.authenticate_api_key(secret.expose()).await.unwrap(),
        None
    );
}
