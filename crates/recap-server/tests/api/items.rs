//! `/api/v1/items`: owner-scoped CRUD, paging, validation, authentication, and items surviving a
//! guest's upgrade.

use serde_json::{Value, json};

use crate::{
    engine_tests,
    helpers::{Engine, SignedIn, TestApp, assert_envelope, spawn},
};

engine_tests!(
    items_crud_round_trip,
    items_are_paged_newest_first,
    items_are_visible_to_their_owner_only,
    invalid_items_are_refused_with_the_field,
    items_need_a_bearer_token,
    guest_upgrade_keeps_items,
);

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post_as("/api/v1/items", token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "create {body}");
    response.json().await.unwrap()
}

fn item_path(id: &str) -> String {
    format!("/api/v1/items/{id}")
}

/// Asserts the 404 every route answers for an item the caller cannot have.
async fn assert_item_not_found(response: reqwest::Response, id: &str) {
    let body = assert_envelope(response, 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "Item not found", "{body}");
    assert_eq!(body["error"]["message"], "Item not found", "{body}");
    assert_eq!(body["error"]["details"], json!({ "item_id": id }), "{body}");
}

fn assert_timestamp(value: &Value) {
    let ts = value.as_str().unwrap_or_else(|| panic!("a timestamp, got {value}"));
    assert!(ts.ends_with('Z'), "{ts}");
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
}

/// The first `loc` of a 422 envelope.
async fn validation_loc(response: reqwest::Response) -> Value {
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    let detail = body["detail"].as_array().unwrap_or_else(|| panic!("a detail list: {body}"));
    assert!(!detail.is_empty(), "{body}");
    assert!(detail[0]["msg"].is_string() && detail[0]["type"].is_string(), "{body}");
    detail[0]["loc"].clone()
}

async fn items_crud_round_trip(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let token = user.access_token.as_str();

    let created = create(&app, token, json!({"title": "  Buy milk  ", "description": "  two litres \n"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&id).expect("a UUID id");
    assert_eq!(created["title"], "Buy milk");
    assert_eq!(created["description"], "two litres");
    assert_eq!(created["is_active"], true);
    assert_timestamp(&created["created_at"]);
    assert_eq!(created["updated_at"], Value::Null);
    let mut keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "description", "id", "is_active", "title", "updated_at"]);

    // Without a description, or with an empty one, there is none.
    let bare = create(&app, token, json!({"title": "Bare"})).await;
    assert_eq!(bare["description"], Value::Null);
    let blank = create(&app, token, json!({"title": "Blank", "description": "   "})).await;
    assert_eq!(blank["description"], Value::Null);

    assert_eq!(app.get_json(&item_path(&id), token).await, created);

    // PATCH changes only what is sent, and stamps updated_at.
    let response = app.patch_as(&item_path(&id), token).json(&json!({"title": " Buy oat milk "})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["id"], id.as_str());
    assert_eq!(patched["title"], "Buy oat milk");
    assert_eq!(patched["description"], "two litres");
    assert_eq!(patched["is_active"], true);
    assert_eq!(patched["created_at"], created["created_at"]);
    assert_timestamp(&patched["updated_at"]);

    // null clears the description; is_active changes; the title stays.
    let response = app
        .patch_as(&item_path(&id), token)
        .json(&json!({"description": null, "is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["title"], "Buy oat milk");
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["is_active"], false);
    assert_timestamp(&patched["updated_at"]);

    // A description can be set again; an empty patch changes nothing else.
    let response = app.patch_as(&item_path(&id), token).json(&json!({"description": " again "})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.patch_as(&item_path(&id), token).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let fetched = app.get_json(&item_path(&id), token).await;
    assert_eq!(fetched["title"], "Buy oat milk");
    assert_eq!(fetched["description"], "again");
    assert_eq!(fetched["is_active"], false);
    assert_eq!(fetched["created_at"], created["created_at"]);

    let list = app.get_json("/api/v1/items", token).await;
    assert_eq!(list["total"], 3);
    assert!(list["items"].as_array().unwrap().contains(&fetched), "{list}");

    // DELETE: 204 with no body, then the item is gone everywhere.
    let response = app.delete_as(&item_path(&id), token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_item_not_found(app.get_as(&item_path(&id), token).send().await.unwrap(), &id).await;
    assert_item_not_found(app.delete_as(&item_path(&id), token).send().await.unwrap(), &id).await;
    assert_item_not_found(app.patch_as(&item_path(&id), token).json(&json!({"title": "x"})).send().await.unwrap(), &id)
        .await;
    let list = app.get_json("/api/v1/items", token).await;
    assert_eq!(list["total"], 2);
    assert!(list["items"].as_array().unwrap().iter().all(|i| i["id"] != id.as_str()), "{list}");

    // A malformed id is an item that does not exist, echoed as given.
    for bad in ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"] {
        assert_item_not_found(app.get_as(&item_path(bad), token).send().await.unwrap(), bad).await;
        assert_item_not_found(
            app.patch_as(&item_path(bad), token).json(&json!({"title": "x"})).send().await.unwrap(),
            bad,
        )
        .await;
        assert_item_not_found(app.delete_as(&item_path(bad), token).send().await.unwrap(), bad).await;
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_item_not_found(app.get_as(&item_path(&unknown), token).send().await.unwrap(), &unknown).await;
}

async fn items_are_paged_newest_first(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let token = user.access_token.as_str();
    let mut ids = Vec::new();
    for title in ["first", "second", "third"] {
        ids.push(create(&app, token, json!({ "title": title })).await["id"].as_str().unwrap().to_owned());
    }
    let titles = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap().to_owned()).collect()
    };

    let page = app.get_json("/api/v1/items?page=1&size=2", token).await;
    assert_eq!(titles(&page), ["third", "second"]);
    assert_eq!(
        (&page["total"], &page["page"], &page["size"], &page["pages"]),
        (&json!(3), &json!(1), &json!(2), &json!(2))
    );
    let page = app.get_json("/api/v1/items?page=2&size=2", token).await;
    assert_eq!(titles(&page), ["first"]);
    assert_eq!(page["items"][0]["id"], ids[0].as_str());
    assert_eq!(
        (&page["total"], &page["page"], &page["size"], &page["pages"]),
        (&json!(3), &json!(2), &json!(2), &json!(2))
    );
    // Past the end: an empty page, the same totals.
    let page = app.get_json("/api/v1/items?page=3&size=2", token).await;
    assert_eq!(page["items"], json!([]));
    assert_eq!((&page["total"], &page["pages"]), (&json!(3), &json!(2)));
    // Defaults: page 1, size 50.
    let page = app.get_json("/api/v1/items", token).await;
    assert_eq!(titles(&page), ["third", "second", "first"]);
    assert_eq!((&page["page"], &page["size"], &page["pages"]), (&json!(1), &json!(50), &json!(1)));

    for (query, field) in [("size=0", "size"), ("size=101", "size"), ("page=0", "page"), ("page=-1&size=2", "page")] {
        let response = app.get_as(&format!("/api/v1/items?{query}"), token).send().await.unwrap();
        assert_eq!(validation_loc(response).await, json!(["query", field]), "{query}");
    }
    let response = app.get_as("/api/v1/items?page=abc", token).send().await.unwrap();
    assert_eq!(validation_loc(response).await, json!(["query", "page"]));

    // A user without items sees an empty envelope.
    let other = app.signed_in("bob@example.com").await;
    let page = app.get_json("/api/v1/items", &other.access_token).await;
    assert_eq!(page, json!({"items": [], "total": 0, "page": 1, "size": 50, "pages": 0}));
}

/// GET, PATCH and DELETE of `id` as `intruder` all answer 404 `Item not found`.
async fn assert_hidden_from(app: &TestApp, intruder: &SignedIn, id: &str) {
    let token = intruder.access_token.as_str();
    assert_item_not_found(app.get_as(&item_path(id), token).send().await.unwrap(), id).await;
    assert_item_not_found(
        app.patch_as(&item_path(id), token)
            .json(&json!({"title": "hijacked", "description": null, "is_active": false}))
            .send()
            .await
            .unwrap(),
        id,
    )
    .await;
    assert_item_not_found(app.delete_as(&item_path(id), token).send().await.unwrap(), id).await;
    let list = app.get_json("/api/v1/items", token).await;
    assert!(list["items"].as_array().unwrap().iter().all(|i| i["id"] != id), "{list}");
}

async fn items_are_visible_to_their_owner_only(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    // The first account is the admin; admins do not see other users' items either.
    let admin = app.signed_in("admin@example.com").await;
    let alice = app.signed_in("alice@example.com").await;
    let bob = app.signed_in("bob@example.com").await;

    let item = create(&app, &alice.access_token, json!({"title": "Alice's", "description": "private"})).await;
    let id = item["id"].as_str().unwrap();
    let bobs = create(&app, &bob.access_token, json!({"title": "Bob's"})).await;

    assert_hidden_from(&app, &bob, id).await;
    assert_hidden_from(&app, &admin, id).await;

    // Alice's item is untouched.
    assert_eq!(app.get_json(&item_path(id), &alice.access_token).await, item);
    let list = app.get_json("/api/v1/items", &alice.access_token).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"], json!([item]));

    // Bob's list holds his item only; the admin's holds nothing.
    let list = app.get_json("/api/v1/items", &bob.access_token).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"], json!([bobs]));
    let list = app.get_json("/api/v1/items", &admin.access_token).await;
    assert_eq!(list["total"], 0);
    assert_eq!(list["items"], json!([]));

    // And the other way round: Alice cannot reach Bob's item.
    assert_hidden_from(&app, &alice, bobs["id"].as_str().unwrap()).await;
    assert_eq!(app.get_json(&item_path(bobs["id"].as_str().unwrap()), &bob.access_token).await, bobs);
}

async fn invalid_items_are_refused_with_the_field(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let token = user.access_token.as_str();

    let post = |body: Value| app.post_as("/api/v1/items", token).json(&body).send();
    for body in [
        json!({"title": ""}),
        json!({"title": "   \t "}),
        json!({"title": "a".repeat(256)}),
        json!({"title": 42}),
        json!({"title": null}),
        json!({"description": "no title"}),
    ] {
        let response = post(body.clone()).await.unwrap();
        assert_eq!(validation_loc(response).await, json!(["body", "title"]), "{body}");
    }
    let response = post(json!({"title": "ok", "description": "d".repeat(10_001)})).await.unwrap();
    assert_eq!(validation_loc(response).await, json!(["body", "description"]));
    let response = post(json!({"title": "ok", "description": ["a"]})).await.unwrap();
    assert_eq!(validation_loc(response).await, json!(["body", "description"]));

    // Each rule's type is reported; both fields at once when both are wrong.
    let response = post(json!({"title": " ", "description": "d".repeat(10_001)})).await.unwrap();
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    let detail = body["detail"].as_array().unwrap();
    assert_eq!(detail.len(), 2, "{body}");
    assert_eq!((&detail[0]["loc"], &detail[0]["type"]), (&json!(["body", "title"]), &json!("string_too_short")));
    assert_eq!((&detail[1]["loc"], &detail[1]["type"]), (&json!(["body", "description"]), &json!("string_too_long")));
    let response = post(json!({"title": 42})).await.unwrap();
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "type_error", "{body}");
    let response = post(json!({"title": "a".repeat(256)})).await.unwrap();
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "string_too_long", "{body}");

    // Malformed JSON and an empty body are 422 too.
    let response = app
        .post_as("/api/v1/items", token)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "json_invalid", "{body}");
    let response = app.post_as("/api/v1/items", token).send().await.unwrap();
    assert_eq!(validation_loc(response).await, json!(["body"]));

    // Nothing was created; the limits themselves are fine (255 characters, not bytes).
    assert_eq!(app.get_json("/api/v1/items", token).await["total"], 0);
    let long = create(&app, token, json!({"title": "é".repeat(255), "description": "d".repeat(10_000)})).await;
    assert_eq!(long["title"].as_str().unwrap().chars().count(), 255);
    let id = long["id"].as_str().unwrap();

    // PATCH: the same rules, and null is no title or is_active.
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "  "}), "title"),
        (json!({"title": "a".repeat(256)}), "title"),
        (json!({"title": null}), "title"),
        (json!({"title": 1}), "title"),
        (json!({"description": "d".repeat(10_001)}), "description"),
        (json!({"description": 5}), "description"),
        (json!({"is_active": "yes"}), "is_active"),
        (json!({"is_active": null}), "is_active"),
    ] {
        let response = app.patch_as(&item_path(id), token).json(&body).send().await.unwrap();
        assert_eq!(validation_loc(response).await, json!(["body", field]), "{body}");
    }
    // A refused patch changes nothing.
    assert_eq!(app.get_json(&item_path(id), token).await, long);
}

async fn items_need_a_bearer_token(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let item = create(&app, &user.access_token, json!({"title": "mine"})).await;
    let path = item_path(item["id"].as_str().unwrap());

    let requests = [
        app.client.get(app.url("/api/v1/items")),
        app.client.post(app.url("/api/v1/items")).json(&json!({"title": "x"})),
        app.client.get(app.url(&path)),
        app.client.patch(app.url(&path)).json(&json!({"title": "x"})),
        app.client.delete(app.url(&path)),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
        assert_eq!(body["detail"], "Not authenticated", "{body}");
    }
    // A bad token is refused the same way.
    let response = app.get_as("/api/v1/items", "not-a-jwt").send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;

    // Nothing changed.
    assert_eq!(app.get_json(&path, &user.access_token).await, item);
    assert_eq!(app.get_json("/api/v1/items", &user.access_token).await["total"], 1);
}

async fn guest_upgrade_keeps_items(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let response = app.client.post(app.url("/api/v1/auth/guest")).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let guest: Value = response.json().await.unwrap();
    assert_eq!(guest["user"]["role"], "guest");
    let guest_token = guest["access_token"].as_str().unwrap().to_owned();

    let item = create(&app, &guest_token, json!({"title": "made as a guest"})).await;
    let id = item["id"].as_str().unwrap();

    let response = app
        .post_as("/api/v1/auth/upgrade", &guest_token)
        .json(&json!({"email": "grace@example.com", "password": "correct-horse-42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let upgraded: Value = response.json().await.unwrap();
    assert_eq!(upgraded["role"], "member");
    assert_eq!(upgraded["id"], guest["user"]["id"]);

    let tokens = app.login("grace@example.com", "correct-horse-42").await;
    let token = tokens["access_token"].as_str().unwrap();
    let list = app.get_json("/api/v1/items", token).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"], json!([item]));
    assert_eq!(app.get_json(&item_path(id), token).await, item);
    // The session the guest started still works, and sees the same item.
    assert_eq!(app.get_json(&item_path(id), &guest_token).await, item);
}
