//! Projects, members and repositories (league contract §4): CRUD, both repository paths, and
//! access by project role (outsiders 404, viewers 403 on writes).

use serde_json::{Value, json};

use crate::{
    engine_tests,
    helpers::{Engine, SignedIn, TestApp, assert_envelope, spawn},
};

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn create_project(app: &TestApp, user: &SignedIn, body: Value) -> reqwest::Response {
    app.post_as("/api/v1/projects", &user.access_token).json(&body).send().await.unwrap()
}

async fn add_member(app: &TestApp, owner: &SignedIn, project: &str, email: &str, role: &str) -> reqwest::Response {
    app.post_as(&format!("/api/v1/projects/{project}/members"), &owner.access_token)
        .json(&json!({"email": email, "role": role}))
        .send()
        .await
        .unwrap()
}

engine_tests!(projects_crud_and_validation, members_and_roles, repositories_on_both_paths, repository_access_by_role);

async fn projects_crud_and_validation(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let owner = app.signed_in("owner@example.com").await;
    let other = app.signed_in("other@example.com").await;

    let created = json_of(
        create_project(&app, &owner, json!({"name": " Demo ", "slug": "My-Demo_1", "description": "x"})).await,
        201,
    )
    .await;
    assert_eq!(created["name"], "Demo");
    assert_eq!(created["slug"], "my-demo_1");
    assert_eq!((created["repos_count"].as_i64(), created["role"].as_str()), (Some(0), Some("owner")));
    assert_eq!(created["created_by"], owner.id.as_str());
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let id = created["id"].as_str().unwrap().to_owned();

    // Duplicate slug (any case) → 409; bad slugs and names → 422.
    let body = assert_envelope(
        create_project(&app, &other, json!({"name": "B", "slug": "MY-DEMO_1"})).await,
        409,
        "ALREADY_EXISTS",
    )
    .await;
    assert_eq!(body["detail"], "A project with slug 'my-demo_1' already exists");
    for slug in ["bad slug", "-_-", "", "ça", &"a".repeat(101)] {
        let body = assert_envelope(
            create_project(&app, &owner, json!({"name": "B", "slug": slug})).await,
            422,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(body["detail"][0]["loc"], json!(["body", "slug"]), "{slug}");
    }
    let body =
        assert_envelope(create_project(&app, &owner, json!({"name": "", "slug": "ok"})).await, 422, "VALIDATION_ERROR")
            .await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "name"]));
    assert_envelope(create_project(&app, &owner, json!({"slug": "ok"})).await, 422, "VALIDATION_ERROR").await;

    // Lists show only the caller's projects.
    json_of(create_project(&app, &other, json!({"name": "Other", "slug": "other"})).await, 201).await;
    let page = json_of(app.get_as("/api/v1/projects", &owner.access_token).send().await.unwrap(), 200).await;
    assert_eq!(
        (page["total"].as_i64(), page["page"].as_i64(), page["size"].as_i64(), page["pages"].as_i64()),
        (Some(1), Some(1), Some(50), Some(1))
    );
    assert_eq!(page["items"][0]["id"], id.as_str());

    // Get (with repos), patch, delete.
    let got =
        json_of(app.get_as(&format!("/api/v1/projects/{id}"), &owner.access_token).send().await.unwrap(), 200).await;
    assert_eq!((got["repos"].as_array().map(Vec::len), got["description"].as_str()), (Some(0), Some("x")));
    let patched = json_of(
        app.patch_as(&format!("/api/v1/projects/{id}"), &owner.access_token)
            .json(&json!({"name": "Renamed"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        (patched["name"].as_str(), patched["slug"].as_str(), patched["description"].as_str()),
        (Some("Renamed"), Some("my-demo_1"), Some("x"))
    );
    assert!(patched["updated_at"].is_string());

    // Outsiders: 404 for reads and writes alike; malformed ids are 404 too.
    for response in [
        app.get_as(&format!("/api/v1/projects/{id}"), &other.access_token).send().await.unwrap(),
        app.patch_as(&format!("/api/v1/projects/{id}"), &other.access_token)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
        app.delete_as(&format!("/api/v1/projects/{id}"), &other.access_token).send().await.unwrap(),
        app.get_as("/api/v1/projects/not-a-uuid", &owner.access_token).send().await.unwrap(),
    ] {
        assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Project not found");
    }
    // Without credentials: 401.
    assert_envelope(app.get("/api/v1/projects").await, 401, "AUTHENTICATION_ERROR").await;

    let response = app.delete_as(&format!("/api/v1/projects/{id}"), &owner.access_token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let response = app.get_as(&format!("/api/v1/projects/{id}"), &owner.access_token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    // The slug is free again; the audit log has the three actions.
    json_of(create_project(&app, &owner, json!({"name": "Again", "slug": "my-demo_1"})).await, 201).await;
    let audit =
        json_of(app.get_as("/api/v1/audit?resource_type=project", &owner.access_token).send().await.unwrap(), 200)
            .await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    for action in ["create_project", "update_project", "delete_project"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
}

async fn members_and_roles(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let owner = app.signed_in("owner@example.com").await;
    let viewer = app.signed_in("viewer@example.com").await;
    let maintainer = app.signed_in("maintainer@example.com").await;
    let id = json_of(create_project(&app, &owner, json!({"name": "P", "slug": "p"})).await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let member = json_of(add_member(&app, &owner, &id, "Viewer@Example.com", "viewer").await, 201).await;
    assert_eq!((member["user_id"].as_str(), member["role"].as_str()), (Some(viewer.id.as_str()), Some("viewer")));
    json_of(add_member(&app, &owner, &id, "maintainer@example.com", "maintainer").await, 201).await;
    let body =
        assert_envelope(add_member(&app, &owner, &id, "nobody@example.com", "viewer").await, 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "User not found");
    let body =
        assert_envelope(add_member(&app, &owner, &id, "viewer@example.com", "boss").await, 422, "VALIDATION_ERROR")
            .await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "role"]));

    let members =
        json_of(app.get_as(&format!("/api/v1/projects/{id}/members"), &viewer.access_token).send().await.unwrap(), 200)
            .await;
    let mut roles: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    roles.sort_unstable();
    assert_eq!(
        roles,
        [("maintainer@example.com", "maintainer"), ("owner@example.com", "owner"), ("viewer@example.com", "viewer")]
    );

    // The project is listed for members, with their role.
    let page = json_of(app.get_as("/api/v1/projects", &viewer.access_token).send().await.unwrap(), 200).await;
    assert_eq!(page["items"][0]["role"], "viewer");

    // Viewers read but may not write; maintainers edit but may not manage members or delete.
    let response = app
        .patch_as(&format!("/api/v1/projects/{id}"), &viewer.access_token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;
    let response = app
        .patch_as(&format!("/api/v1/projects/{id}"), &maintainer.access_token)
        .json(&json!({"description": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response, 200).await["description"], "d");
    assert_envelope(
        add_member(&app, &maintainer, &id, "viewer@example.com", "owner").await,
        403,
        "AUTHORIZATION_ERROR",
    )
    .await;
    let response = app.delete_as(&format!("/api/v1/projects/{id}"), &maintainer.access_token).send().await.unwrap();
    assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;

    // The last owner stays.
    let response = app
        .delete_as(&format!("/api/v1/projects/{id}/members/{}", owner.id), &owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(assert_envelope(response, 400, "BAD_REQUEST").await["detail"], "A project needs at least one owner");
    // Removing a member ends their access (404 afterwards).
    let response = app
        .delete_as(&format!("/api/v1/projects/{id}/members/{}", viewer.id), &owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app.get_as(&format!("/api/v1/projects/{id}"), &viewer.access_token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    let response = app
        .delete_as(&format!("/api/v1/projects/{id}/members/{}", viewer.id), &owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Member not found");
}

async fn repositories_on_both_paths(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let owner = app.signed_in("owner@example.com").await;
    let id = json_of(create_project(&app, &owner, json!({"name": "P", "slug": "p"})).await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = &owner.access_token;

    // The original path, with pull sync and credentials.
    let secret = "ghp_secret_token_value_123";
    let pull = json_of(
        app.post_as(&format!("/api/v1/repos/projects/{id}/repos"), t)
            .json(&json!({"name": "mirror", "remote_url": "https://example.com/x.git", "remote_type": "https",
                          "branch": "develop", "sync_method": "pull", "credentials": {"token": secret}}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(
        (pull["sync_method"].as_str(), pull["remote_type"].as_str(), pull["branch"].as_str()),
        (Some("pull"), Some("https"), Some("develop"))
    );
    assert_eq!((pull["status"].as_str(), pull["has_credentials"].as_bool()), (Some("pending"), Some(true)));
    assert_eq!(
        (pull["last_sync_at"].clone(), pull["last_ingested_sha"].clone(), pull["error_message"].clone()),
        (Value::Null, Value::Null, Value::Null)
    );
    assert!(pull.get("credentials").is_none() && !pull.to_string().contains(secret), "{pull}");

    // The alias path; defaults: push_client, main, no remote type.
    let push = json_of(
        app.post_as(&format!("/api/v1/projects/{id}/repos"), t).json(&json!({"name": "core"})).send().await.unwrap(),
        201,
    )
    .await;
    assert_eq!(
        (push["sync_method"].as_str(), push["branch"].as_str(), push["remote_type"].clone()),
        (Some("push_client"), Some("main"), Value::Null)
    );
    assert_eq!(push["project_id"], id.as_str());
    // pull_celery is an alias of pull.
    let celery = json_of(
        app.post_as(&format!("/api/v1/projects/{id}/repos"), t)
            .json(&json!({"name": "old", "sync_method": "pull_celery"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(celery["sync_method"], "pull");

    // Both lists show all three; the project counts them.
    for path in [format!("/api/v1/projects/{id}/repos"), format!("/api/v1/repos/projects/{id}/repos")] {
        let page = json_of(app.get_as(&path, t).send().await.unwrap(), 200).await;
        assert_eq!(page["total"], 3, "{path}");
        let names: Vec<&str> = page["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["mirror", "core", "old"]);
        assert!(!page.to_string().contains(secret));
    }
    let project = json_of(app.get_as(&format!("/api/v1/projects/{id}"), t).send().await.unwrap(), 200).await;
    assert_eq!((project["repos_count"].as_i64(), project["repos"].as_array().map(Vec::len)), (Some(3), Some(3)));
    assert!(!project.to_string().contains(secret));

    // Duplicate names in the project → 409 (on either path); invalid fields → 422.
    for path in [format!("/api/v1/projects/{id}/repos"), format!("/api/v1/repos/projects/{id}/repos")] {
        let response = app.post_as(&path, t).json(&json!({"name": "core"})).send().await.unwrap();
        assert_eq!(
            assert_envelope(response, 409, "ALREADY_EXISTS").await["detail"],
            "A repository named 'core' already exists in this project"
        );
    }
    for (body, field) in [
        (json!({"name": "x", "sync_method": "ftp"}), "sync_method"),
        (json!({"name": "x", "remote_type": "svn"}), "remote_type"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "credentials": "token"}), "credentials"),
    ] {
        let response = app.post_as(&format!("/api/v1/projects/{id}/repos"), t).json(&body).send().await.unwrap();
        let err = assert_envelope(response, 422, "VALIDATION_ERROR").await;
        assert_eq!(err["detail"][0]["loc"], json!(["body", field]), "{body}");
    }
    // The same name in another project is fine.
    let other = json_of(create_project(&app, &owner, json!({"name": "Q", "slug": "q"})).await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json_of(
        app.post_as(&format!("/api/v1/projects/{other}/repos"), t).json(&json!({"name": "core"})).send().await.unwrap(),
        201,
    )
    .await;

    // Get, patch (switch to push, drop credentials), rename onto a taken name, delete.
    let repo_id = pull["id"].as_str().unwrap();
    let got = json_of(app.get_as(&format!("/api/v1/repos/{repo_id}"), t).send().await.unwrap(), 200).await;
    assert_eq!(got["name"], "mirror");
    let patched = json_of(
        app.patch_as(&format!("/api/v1/repos/{repo_id}"), t)
            .json(&json!({"sync_method": "push_client", "credentials": null}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        (patched["sync_method"].as_str(), patched["has_credentials"].as_bool(), patched["branch"].as_str()),
        (Some("push_client"), Some(false), Some("develop"))
    );
    let response =
        app.patch_as(&format!("/api/v1/repos/{repo_id}"), t).json(&json!({"name": "core"})).send().await.unwrap();
    assert_envelope(response, 409, "ALREADY_EXISTS").await;
    assert_eq!(app.delete_as(&format!("/api/v1/repos/{repo_id}"), t).send().await.unwrap().status(), 204);
    let response = app.get_as(&format!("/api/v1/repos/{repo_id}"), t).send().await.unwrap();
    assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Repository not found");
    let response = app
        .post_as(&format!("/api/v1/repos/projects/{}/repos", uuid::Uuid::new_v4()), t)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Project not found");
}

async fn repository_access_by_role(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let owner = app.signed_in("owner@example.com").await;
    let viewer = app.signed_in("viewer@example.com").await;
    let outsider = app.signed_in("outsider@example.com").await;
    let id = json_of(create_project(&app, &owner, json!({"name": "P", "slug": "p"})).await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json_of(add_member(&app, &owner, &id, "viewer@example.com", "viewer").await, 201).await;
    let repo = json_of(
        app.post_as(&format!("/api/v1/projects/{id}/repos"), &owner.access_token)
            .json(&json!({"name": "core"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let repo_id = repo["id"].as_str().unwrap();

    // The viewer reads on both paths ...
    json_of(app.get_as(&format!("/api/v1/repos/{repo_id}"), &viewer.access_token).send().await.unwrap(), 200).await;
    for path in [format!("/api/v1/projects/{id}/repos"), format!("/api/v1/repos/projects/{id}/repos")] {
        assert_eq!(json_of(app.get_as(&path, &viewer.access_token).send().await.unwrap(), 200).await["total"], 1);
    }
    // ... and may not write (403).
    for response in [
        app.post_as(&format!("/api/v1/projects/{id}/repos"), &viewer.access_token)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
        app.post_as(&format!("/api/v1/repos/projects/{id}/repos"), &viewer.access_token)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
        app.patch_as(&format!("/api/v1/repos/{repo_id}"), &viewer.access_token)
            .json(&json!({"branch": "x"}))
            .send()
            .await
            .unwrap(),
        app.delete_as(&format!("/api/v1/repos/{repo_id}"), &viewer.access_token).send().await.unwrap(),
    ] {
        assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;
    }
    // Outsiders get 404 everywhere.
    for response in [
        app.get_as(&format!("/api/v1/repos/{repo_id}"), &outsider.access_token).send().await.unwrap(),
        app.patch_as(&format!("/api/v1/repos/{repo_id}"), &outsider.access_token)
            .json(&json!({"branch": "x"}))
            .send()
            .await
            .unwrap(),
        app.delete_as(&format!("/api/v1/repos/{repo_id}"), &outsider.access_token).send().await.unwrap(),
        app.get_as("/api/v1/repos/not-a-uuid", &owner.access_token).send().await.unwrap(),
    ] {
        assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Repository not found");
    }
    for path in [format!("/api/v1/projects/{id}/repos"), format!("/api/v1/repos/projects/{id}/repos")] {
        let response = app.get_as(&path, &outsider.access_token).send().await.unwrap();
        assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Project not found");
    }
    // API keys are for the sync routes: elsewhere they are refused with 401.
    let key = json_of(
        app.post_as("/api/v1/api-keys/", &owner.access_token).json(&json!({"name": "k"})).send().await.unwrap(),
        201,
    )
    .await;
    let response =
        app.get_as(&format!("/api/v1/repos/{repo_id}"), key["full_key"].as_str().unwrap()).send().await.unwrap();
    assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
    // Nothing changed.
    let after =
        json_of(app.get_as(&format!("/api/v1/repos/{repo_id}"), &owner.access_token).send().await.unwrap(), 200).await;
    assert_eq!((after["branch"].as_str(), after["name"].as_str()), (Some("main"), Some("core")));
}
