//! Scenes, prompts, `scenes/bulk` and `generate-prompts` as SPEC §3–§5 describe them, through the
//! real router on a real embedded store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API, TestApp, ids, planning_story};

async fn scenes_of(app: &TestApp, user: &str, story: &str) -> Vec<Value> {
    app.results(&format!("{API}/scenes/?story={story}&page_size=100"), user).await
}

async fn prompts_of(app: &TestApp, user: &str, query: &str) -> Vec<Value> {
    app.results(&format!("{API}/prompts/?{query}&page_size=100"), user).await
}

fn frames(scenes: &[Value], fps: f64) -> i64 {
    scenes.iter().map(|s| (s["duration_seconds"].as_f64().unwrap() * fps).round() as i64).sum()
}

#[tokio::test]
async fn bulk_makes_twelve_scenes_with_selected_video_prompts_and_moves_to_planning_in_one_write() {
    let app = TestApp::new().await;
    let (id, body) =
        planning_story(&app, "alice", json!({"title": "Fox", "duration_seconds": 30, "fps": 24}), json!({})).await;
    assert_eq!(body["story"]["status"], "PLANNING");
    assert_eq!(body["story"]["version"], 2);
    let scenes = body["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 12);
    let kinds: Vec<&str> = scenes.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "intro");
    assert_eq!(kinds[11], "outro");
    assert!(kinds[1..11].iter().all(|k| *k == "main"));
    assert_eq!(frames(scenes, 24.0), 30 * 24, "durations sum exactly to the story");
    for (i, scene) in scenes.iter().enumerate() {
        assert_eq!(scene["order"], i);
        let prompts = scene["prompts"].as_array().unwrap();
        assert_eq!(prompts.len(), 1);
        assert_eq!(prompts[0]["prompt_type"], "video");
        assert_eq!(prompts[0]["is_selected"], true);
    }
    // Start times follow the durations.
    let mut start = 0.0;
    for scene in scenes {
        assert!((scene["start_seconds"].as_f64().unwrap() - start).abs() < 0.001);
        start += scene["duration_seconds"].as_f64().unwrap();
    }
    let history = app.get(&format!("{API}/stories/{id}/transitions/"), "alice").await;
    let records = history.body["results"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0]["from"].clone(), records[0]["to"].clone()), (json!("DRAFT"), json!("PLANNING")));
    // And the whole plan is enough for PLANNED.
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
}

#[tokio::test]
async fn bulk_refuses_existing_scenes_unless_replace_is_sent() {
    let app = TestApp::new().await;
    let (id, first) = planning_story(&app, "alice", json!({"title": "Fox", "duration_seconds": 10}), json!({})).await;
    let again = app.post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body["detail"].as_str().unwrap().contains("replace"));
    let replaced = app
        .post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", json!({"replace": true, "scene_count": 5}))
        .await;
    assert_eq!(replaced.status, StatusCode::CREATED);
    assert_eq!(replaced.body["scenes"].as_array().unwrap().len(), 5);
    for old in ids(&first["scenes"]) {
        assert_eq!(app.get(&format!("{API}/scenes/{old}/"), "alice").await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(scenes_of(&app, "alice", &id).await.len(), 5);
    assert_eq!(prompts_of(&app, "alice", &format!("story={id}")).await.len(), 5, "old prompts went with their scenes");
}

#[tokio::test]
async fn bulk_refuses_impossible_counts_with_a_400_naming_scene_count() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "Tiny", "duration_seconds": 5, "fps": 1})).await;
    for body in [
        json!({"scene_count": 2}),
        json!({"scene_count": 25}),
        json!({"scene_count": 6}),
        json!({"scene_count": "many"}),
        json!({"scene_count": -1}),
        json!({"replace": "yes"}),
    ] {
        let reply = app.post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let named = reply.body.get("scene_count").or(reply.body.get("replace"));
        assert!(named.is_some(), "{body}: {}", reply.body);
    }
    let ok = app.post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", json!({"scene_count": 5})).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert!(ok.body["scenes"].as_array().unwrap().iter().all(|s| s["duration_seconds"] == 1.0));
    assert_eq!(app.get(&format!("{API}/stories/{id}/"), "alice").await.body["status"], "PLANNING");
}

#[tokio::test]
async fn a_failed_bulk_writes_nothing() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "Tiny", "duration_seconds": 5, "fps": 1})).await;
    app.post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", json!({"scene_count": 6})).await;
    assert_eq!(app.get(&format!("{API}/stories/{id}/"), "alice").await.body["status"], "DRAFT");
    assert!(scenes_of(&app, "alice", &id).await.is_empty());
}

#[tokio::test]
async fn planned_needs_durations_that_sum_and_a_selected_video_prompt_on_every_scene() {
    let app = TestApp::new().await;
    let (id, body) =
        planning_story(&app, "alice", json!({"title": "Fox", "duration_seconds": 12, "fps": 24}), json!({})).await;
    let scene = body["scenes"][3].clone();
    let prompt = scene["prompts"][0]["id"].as_str().unwrap().to_owned();
    // Remove scene 3's selected video prompt: PLANNED names what is missing.
    let deleted = app.send(Method::DELETE, &format!("{API}/prompts/{prompt}/"), Some("alice"), None, &[]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let refused = app.transition(&id, "alice", "PLANNED").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body["detail"].as_str().unwrap().contains("order 3"), "{}", refused.body);
    // Give it a prompt again (the first of its type is selected) but break the durations.
    let created = app.post(&format!("{API}/prompts/"), "alice", json!({"scene": scene["id"], "text": "A fox."})).await;
    assert_eq!(created.body["is_selected"], true);
    let sid = scene["id"].as_str().unwrap();
    app.patch(&format!("{API}/scenes/{sid}/"), "alice", json!({"duration_seconds": 9.5})).await;
    let refused = app.transition(&id, "alice", "PLANNED").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body["detail"].as_str().unwrap().contains("sum"), "{}", refused.body);
    app.patch(&format!("{API}/scenes/{sid}/"), "alice", json!({"duration_seconds": scene["duration_seconds"]})).await;
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
}

#[tokio::test]
async fn generate_prompts_adds_selected_template_prompts_and_keeps_the_old_ones() {
    let app = TestApp::new().await;
    let story =
        json!({"title": "Fox", "description": "A fox in snow", "style_preset": "anime", "duration_seconds": 10});
    let (id, bulk) = planning_story(&app, "alice", story, json!({})).await;
    let reply = app.post(&format!("{API}/stories/{id}/generate-prompts/"), "alice", json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["writer"], "template");
    assert_eq!(reply.body["llm_error"], Value::Null);
    let new = reply.body["prompts"].as_array().unwrap();
    assert_eq!(new.len(), 12);
    assert!(new.iter().all(|p| p["is_selected"] == true && p["prompt_type"] == "video"));
    assert!(new[1]["text"].as_str().unwrap().contains("cel shading"));
    let all = prompts_of(&app, "alice", &format!("story={id}&prompt_type=video")).await;
    assert_eq!(all.len(), 24, "old prompts are kept");
    let selected = prompts_of(&app, "alice", &format!("story={id}&is_selected=true")).await;
    assert_eq!(ids(&json!(selected)).len(), 12);
    for old in bulk["scenes"].as_array().unwrap() {
        let old_id = old["prompts"][0]["id"].as_str().unwrap();
        assert_eq!(app.get(&format!("{API}/prompts/{old_id}/"), "alice").await.body["is_selected"], false);
    }
    // Deterministic: the same story gives the same texts.
    let again = app.post(&format!("{API}/stories/{id}/generate-prompts/"), "alice", json!({})).await;
    let texts = |v: &Value| -> Vec<String> {
        v["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(texts(&reply.body), texts(&again.body));
    // Other types are selected independently of video.
    let narration =
        app.post(&format!("{API}/stories/{id}/generate-prompts/"), "alice", json!({"prompt_type": "narration"})).await;
    assert_eq!(narration.status, StatusCode::OK);
    assert_eq!(prompts_of(&app, "alice", &format!("story={id}&is_selected=true")).await.len(), 24);
}

#[tokio::test]
async fn generate_prompts_needs_scenes_and_refuses_the_llm_when_none_is_configured() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "Empty"})).await;
    let reply = app.post(&format!("{API}/stories/{id}/generate-prompts/"), "alice", json!({})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let (id, _) = planning_story(&app, "alice", json!({"title": "Fox"}), json!({})).await;
    let llm = app.post(&format!("{API}/stories/{id}/generate-prompts/"), "alice", json!({"writer": "llm"})).await;
    assert_eq!(llm.status, StatusCode::BAD_REQUEST);
    assert!(llm.body.get("writer").is_some());
    for body in [json!({"writer": "gpt"}), json!({"prompt_type": "audio"}), json!({"prompt_type": 1})] {
        assert_eq!(
            app.post(&format!("{API}/stories/{id}/generate-prompts/"), "alice", body).await.status,
            StatusCode::BAD_REQUEST
        );
    }
}

#[tokio::test]
async fn scenes_are_created_inserted_and_listed_in_order_with_derived_start_times() {
    let app = TestApp::new().await;
    let story = app.create_story("alice", json!({"title": "Manual", "duration_seconds": 10, "fps": 10})).await;
    let a = app
        .post(
            &format!("{API}/scenes/"),
            "alice",
            json!({"story": story, "duration_seconds": 4, "kind": "intro", "title": "A"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(
        (a.body["order"].clone(), a.body["start_seconds"].clone(), a.body["status"].clone()),
        (json!(0), json!(0.0), json!("pending"))
    );
    assert_eq!(a.etag(), "\"1\"");
    let c = app
        .post(&format!("{API}/scenes/"), "alice", json!({"story": story, "duration_seconds": 3, "title": "C"}))
        .await;
    assert_eq!(c.body["order"], 1);
    assert_eq!(c.body["start_seconds"], 4.0);
    // Inserting at order 1 moves C down.
    let b = app
        .post(
            &format!("{API}/scenes/"),
            "alice",
            json!({"story": story, "duration_seconds": 3, "title": "B", "order": 1}),
        )
        .await;
    assert_eq!(b.body["order"], 1);
    let titles: Vec<String> =
        scenes_of(&app, "alice", &story).await.iter().map(|s| s["title"].as_str().unwrap().to_owned()).collect();
    assert_eq!(titles, vec!["A", "B", "C"]);
    let starts: Vec<f64> =
        scenes_of(&app, "alice", &story).await.iter().map(|s| s["start_seconds"].as_f64().unwrap()).collect();
    assert_eq!(starts, vec![0.0, 4.0, 7.0]);
    let beyond =
        app.post(&format!("{API}/scenes/"), "alice", json!({"story": story, "duration_seconds": 1, "order": 9})).await;
    assert_eq!(beyond.status, StatusCode::BAD_REQUEST);
    assert!(beyond.body.get("order").is_some());
    let newest = app.get(&format!("{API}/scenes/?story={story}&ordering=-created_at"), "alice").await;
    assert_eq!(newest.body["results"][0]["title"], "B");
    let intros = app.get(&format!("{API}/scenes/?kind=intro"), "alice").await;
    assert_eq!(intros.body["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn reorder_renumbers_every_scene_and_recomputes_start_times() {
    let app = TestApp::new().await;
    let (story, bulk) =
        planning_story(&app, "alice", json!({"title": "Fox", "duration_seconds": 12, "fps": 24}), json!({})).await;
    let last = bulk["scenes"][11]["id"].as_str().unwrap().to_owned();
    let moved = app.post(&format!("{API}/scenes/{last}/reorder/"), "alice", json!({"order": 0})).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["order"], 0);
    assert_eq!(moved.body["start_seconds"], 0.0);
    let scenes = scenes_of(&app, "alice", &story).await;
    let orders: Vec<i64> = scenes.iter().map(|s| s["order"].as_i64().unwrap()).collect();
    assert_eq!(orders, (0..12).collect::<Vec<_>>());
    assert_eq!(scenes[0]["id"], last.as_str());
    assert_eq!(scenes[1]["id"], bulk["scenes"][0]["id"]);
    assert!(
        (scenes[1]["start_seconds"].as_f64().unwrap() - scenes[0]["duration_seconds"].as_f64().unwrap()).abs() < 0.001
    );
    for bad in [json!({"order": 12}), json!({"order": -1}), json!({}), json!({"order": "first"})] {
        let reply = app.post(&format!("{API}/scenes/{last}/reorder/"), "alice", bad.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn deleting_a_scene_closes_the_gap_and_removes_its_prompts() {
    let app = TestApp::new().await;
    let (story, bulk) = planning_story(&app, "alice", json!({"title": "Fox", "duration_seconds": 12}), json!({})).await;
    let victim = bulk["scenes"][4].clone();
    let vid = victim["id"].as_str().unwrap();
    assert_eq!(
        app.send(Method::DELETE, &format!("{API}/scenes/{vid}/"), Some("alice"), None, &[]).await.status,
        StatusCode::NO_CONTENT
    );
    let scenes = scenes_of(&app, "alice", &story).await;
    assert_eq!(scenes.len(), 11);
    assert_eq!(scenes.iter().map(|s| s["order"].as_i64().unwrap()).collect::<Vec<_>>(), (0..11).collect::<Vec<_>>());
    let prompt = victim["prompts"][0]["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("{API}/prompts/{prompt}/"), "alice").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn scene_edits_validate_and_cannot_move_story_or_order() {
    let app = TestApp::new().await;
    let (_, bulk) =
        planning_story(&app, "alice", json!({"title": "Fox", "duration_seconds": 12, "fps": 24}), json!({})).await;
    let other = app.create_story("alice", json!({"title": "Other"})).await;
    let scene = bulk["scenes"][2].clone();
    let sid = scene["id"].as_str().unwrap();
    let path = format!("{API}/scenes/{sid}/");
    let ok = app
        .patch(
            &path,
            "alice",
            json!({"title": "Chase", "description": "Fast", "kind": "main", "order": 2, "story": scene["story"]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["version"], 2);
    for (body, field) in [
        (json!({"story": other}), "story"),
        (json!({"order": 0}), "order"),
        (json!({"duration_seconds": 0}), "duration_seconds"),
        (json!({"duration_seconds": 0.01}), "duration_seconds"),
        (json!({"duration_seconds": "long"}), "duration_seconds"),
        (json!({"kind": "finale"}), "kind"),
        (json!({"title": "t".repeat(201)}), "title"),
        (json!({"status": "ready", "title": 5}), "title"),
    ] {
        let reply = app.patch(&path, "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.body.get(field).is_some(), "{body}: {}", reply.body);
    }
    let put = app.send(Method::PUT, &path, Some("alice"), Some(r#"{"title": "x"}"#), &[]).await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert!(put.body.get("duration_seconds").is_some());
    let stale =
        app.send(Method::PATCH, &path, Some("alice"), Some(r#"{"title": "x"}"#), &[("if-match", "\"1\"")]).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let still = app.get(&path, "alice").await;
    assert_eq!((still.body["title"].clone(), still.body["status"].clone()), (json!("Chase"), json!("pending")));
}

#[tokio::test]
async fn bulk_create_is_all_or_nothing_and_names_the_bad_item() {
    let app = TestApp::new().await;
    let story = app.create_story("alice", json!({"title": "Manual", "duration_seconds": 10})).await;
    let bad = app
        .post(
            &format!("{API}/scenes/bulk_create/"),
            "alice",
            json!([
                {"story": story, "duration_seconds": 5},
                {"story": story, "duration_seconds": -1}
            ]),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.get("1.duration_seconds").is_some(), "{}", bad.body);
    assert!(scenes_of(&app, "alice", &story).await.is_empty());
    let bobs = app.create_story("bob", json!({"title": "Bob's"})).await;
    let foreign = app
        .post(
            &format!("{API}/scenes/bulk_create/"),
            "alice",
            json!({"scenes": [
                {"story": story, "duration_seconds": 5}, {"story": bobs, "duration_seconds": 5}
            ]}),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(foreign.body.get("1.story").is_some(), "{}", foreign.body);
    assert!(scenes_of(&app, "alice", &story).await.is_empty(), "the first scene was not kept");
    assert!(scenes_of(&app, "bob", &bobs).await.is_empty());
    let good = app.post(&format!("{API}/scenes/bulk_create/"), "alice", json!([
        {"story": story, "duration_seconds": 5, "title": "one"}, {"story": story, "duration_seconds": 5, "title": "two"}
    ])).await;
    assert_eq!(good.status, StatusCode::CREATED);
    assert_eq!(good.body.as_array().unwrap().len(), 2);
    assert_eq!(good.body[1]["start_seconds"], 5.0);
    for body in [json!([]), json!({"scenes": 3}), json!("x"), json!([1])] {
        assert_eq!(
            app.post(&format!("{API}/scenes/bulk_create/"), "alice", body.clone()).await.status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
}

#[tokio::test]
async fn select_switches_the_one_selected_prompt_of_a_scene_and_type() {
    let app = TestApp::new().await;
    let (_, bulk) = planning_story(&app, "alice", json!({"title": "Fox"}), json!({})).await;
    let scene = bulk["scenes"][0]["id"].as_str().unwrap().to_owned();
    let original = bulk["scenes"][0]["prompts"][0]["id"].as_str().unwrap().to_owned();
    let second = app
        .post(
            &format!("{API}/prompts/"),
            "alice",
            json!({"scene": scene, "text": "A red fox", "parameters": {"seed": 7}}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["is_selected"], false, "a scene already has a selected video prompt");
    let narration = app
        .post(&format!("{API}/prompts/"), "alice", json!({"scene": scene, "text": "Once.", "prompt_type": "narration"}))
        .await;
    assert_eq!(narration.body["is_selected"], true, "the first of its type is selected");
    let sid = second.body["id"].as_str().unwrap();
    let selected = app.post(&format!("{API}/prompts/{sid}/select/"), "alice", json!({})).await;
    assert_eq!(selected.status, StatusCode::OK);
    assert_eq!(selected.body["is_selected"], true);
    assert_eq!(app.get(&format!("{API}/prompts/{original}/"), "alice").await.body["is_selected"], false);
    let chosen = prompts_of(&app, "alice", &format!("scene={scene}&prompt_type=video&is_selected=true")).await;
    assert_eq!(ids(&json!(chosen)), vec![sid.to_owned()]);
    assert_eq!(
        app.get(&format!("{API}/prompts/{}/", narration.body["id"].as_str().unwrap()), "alice").await.body["is_selected"],
        true
    );
}

#[tokio::test]
async fn prompt_edits_validate_and_cannot_change_scene_or_type() {
    let app = TestApp::new().await;
    let (_, bulk) = planning_story(&app, "alice", json!({"title": "Fox"}), json!({})).await;
    let prompt = bulk["scenes"][0]["prompts"][0].clone();
    let path = format!("{API}/prompts/{}/", prompt["id"].as_str().unwrap());
    let ok =
        app.patch(&path, "alice", json!({"text": "New words", "parameters": {"seed": 1}, "is_selected": false})).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        (ok.body["text"].clone(), ok.body["is_selected"].clone(), ok.body["version"].clone()),
        (json!("New words"), json!(true), json!(2))
    );
    for (body, field) in [
        (json!({"scene": bulk["scenes"][1]["id"]}), "scene"),
        (json!({"prompt_type": "image"}), "prompt_type"),
        (json!({"text": ""}), "text"),
        (json!({"text": "t".repeat(4001)}), "text"),
        (json!({"parameters": [1]}), "parameters"),
        (json!({"parameters": {"big": "x".repeat(17000)}}), "parameters"),
    ] {
        let reply = app.patch(&path, "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.body.get(field).is_some(), "{body}: {}", reply.body);
    }
    let created = app
        .post(&format!("{API}/prompts/"), "alice", json!({"scene": "01JCZ5T8Y9E6K3W7QX4M2N1P0R", "text": "x"}))
        .await;
    assert_eq!(created.status, StatusCode::BAD_REQUEST);
    assert!(created.body.get("scene").is_some());
}

#[tokio::test]
async fn another_users_scenes_and_prompts_are_not_found_anywhere() {
    let app = TestApp::new().await;
    let (story, bulk) = planning_story(&app, "alice", json!({"title": "Mine"}), json!({})).await;
    let scene = bulk["scenes"][0]["id"].as_str().unwrap().to_owned();
    let prompt = bulk["scenes"][0]["prompts"][0]["id"].as_str().unwrap().to_owned();
    let routes: Vec<(Method, String, Option<&str>)> = vec![
        (Method::GET, format!("{API}/scenes/{scene}/"), None),
        (Method::PATCH, format!("{API}/scenes/{scene}/"), Some(r#"{"title":"x"}"#)),
        (Method::PUT, format!("{API}/scenes/{scene}/"), Some(r#"{"duration_seconds":1}"#)),
        (Method::DELETE, format!("{API}/scenes/{scene}/"), None),
        (Method::POST, format!("{API}/scenes/{scene}/reorder/"), Some(r#"{"order":1}"#)),
        (Method::GET, format!("{API}/prompts/{prompt}/"), None),
        (Method::PATCH, format!("{API}/prompts/{prompt}/"), Some(r#"{"text":"x"}"#)),
        (Method::PUT, format!("{API}/prompts/{prompt}/"), Some(r#"{"text":"x"}"#)),
        (Method::DELETE, format!("{API}/prompts/{prompt}/"), None),
        (Method::POST, format!("{API}/prompts/{prompt}/select/"), Some("{}")),
        (Method::POST, format!("{API}/stories/{story}/scenes/bulk/"), Some(r#"{"replace":true}"#)),
        (Method::POST, format!("{API}/stories/{story}/generate-prompts/"), Some("{}")),
    ];
    for (method, path, body) in routes {
        let reply = app.send(method.clone(), &path, Some("bob"), body, &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {}", reply.body);
    }
    assert!(scenes_of(&app, "bob", &story).await.is_empty());
    assert!(app.get(&format!("{API}/scenes/"), "bob").await.body["results"].as_array().unwrap().is_empty());
    assert!(prompts_of(&app, "bob", "prompt_type=video").await.is_empty());
    let planted = app.post(&format!("{API}/scenes/"), "bob", json!({"story": story, "duration_seconds": 1})).await;
    assert_eq!(planted.status, StatusCode::BAD_REQUEST, "bob cannot add a scene to alice's story");
    let planted = app.post(&format!("{API}/prompts/"), "bob", json!({"scene": scene, "text": "x"})).await;
    assert_eq!(planted.status, StatusCode::BAD_REQUEST);
    assert_eq!(scenes_of(&app, "alice", &story).await.len(), 12);
    assert_eq!(prompts_of(&app, "alice", &format!("story={story}")).await.len(), 12);
}

#[tokio::test]
async fn a_locked_story_refuses_every_scene_and_prompt_write() {
    let app = TestApp::new().await;
    let (story, bulk) = planning_story(&app, "alice", json!({"title": "Locked"}), json!({})).await;
    let scene = bulk["scenes"][1]["id"].as_str().unwrap().to_owned();
    let prompt = bulk["scenes"][1]["prompts"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.post(&format!("{API}/stories/{story}/lock/"), "alice", json!({})).await.status, StatusCode::OK);
    let writes: Vec<(Method, String, String)> = vec![
        (Method::POST, format!("{API}/scenes/"), json!({"story": story, "duration_seconds": 1}).to_string()),
        (
            Method::POST,
            format!("{API}/scenes/bulk_create/"),
            json!([{"story": story, "duration_seconds": 1}]).to_string(),
        ),
        (Method::PATCH, format!("{API}/scenes/{scene}/"), r#"{"title":"x"}"#.into()),
        (Method::PUT, format!("{API}/scenes/{scene}/"), r#"{"duration_seconds":1}"#.into()),
        (Method::POST, format!("{API}/scenes/{scene}/reorder/"), r#"{"order":0}"#.into()),
        (Method::DELETE, format!("{API}/scenes/{scene}/"), String::new()),
        (Method::POST, format!("{API}/prompts/"), json!({"scene": scene, "text": "x"}).to_string()),
        (Method::PATCH, format!("{API}/prompts/{prompt}/"), r#"{"text":"x"}"#.into()),
        (Method::POST, format!("{API}/prompts/{prompt}/select/"), "{}".into()),
        (Method::DELETE, format!("{API}/prompts/{prompt}/"), String::new()),
        (Method::POST, format!("{API}/stories/{story}/scenes/bulk/"), r#"{"replace":true}"#.into()),
        (Method::POST, format!("{API}/stories/{story}/generate-prompts/"), "{}".into()),
    ];
    for (method, path, body) in writes {
        let body = if body.is_empty() { None } else { Some(body.as_str()) };
        let reply = app.send(method.clone(), &path, Some("alice"), body, &[]).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["code"], "locked", "{method} {path}");
    }
    assert_eq!(scenes_of(&app, "alice", &story).await.len(), 12);
    assert_eq!(prompts_of(&app, "alice", &format!("story={story}")).await.len(), 12);
    // Reads still work.
    assert_eq!(app.get(&format!("{API}/scenes/{scene}/"), "alice").await.status, StatusCode::OK);
}

#[tokio::test]
async fn planning_routes_survive_every_ugly_body() {
    let app = TestApp::new().await;
    let (story, bulk) = planning_story(&app, "alice", json!({"title": "Ugly"}), json!({})).await;
    let scene = bulk["scenes"][0]["id"].as_str().unwrap().to_owned();
    let prompt = bulk["scenes"][0]["prompts"][0]["id"].as_str().unwrap().to_owned();
    let paths = [
        (Method::POST, format!("{API}/scenes/")),
        (Method::POST, format!("{API}/scenes/bulk_create/")),
        (Method::PATCH, format!("{API}/scenes/{scene}/")),
        (Method::PUT, format!("{API}/scenes/{scene}/")),
        (Method::POST, format!("{API}/scenes/{scene}/reorder/")),
        (Method::POST, format!("{API}/prompts/")),
        (Method::PATCH, format!("{API}/prompts/{prompt}/")),
        (Method::PUT, format!("{API}/prompts/{prompt}/")),
        (Method::POST, format!("{API}/stories/{story}/scenes/bulk/")),
        (Method::POST, format!("{API}/stories/{story}/generate-prompts/")),
    ];
    let bodies = [
        "{",
        "[",
        "null",
        "42",
        "\"text\"",
        "[{}]",
        r#"{"story": null, "scene": {}, "order": 1e99, "duration_seconds": [], "text": null, "parameters": "x", "scene_count": 1.5, "replace": 3, "prompt_type": {}, "kind": 0}"#,
        "\u{0}",
    ];
    for (method, path) in &paths {
        for body in bodies {
            let reply = app.send(method.clone(), path, Some("alice"), Some(body), &[]).await;
            assert!(reply.status.is_client_error(), "{method} {path} {body:?} → {}", reply.status);
            assert!(reply.body.get("code").is_some(), "{method} {path} {body:?}: {}", reply.body);
        }
    }
    assert_eq!(scenes_of(&app, "alice", &story).await.len(), 12);
}

#[tokio::test]
async fn the_cost_estimate_prices_the_story_with_its_provider_per_quality() {
    let app = TestApp::new().await;
    let (id, _) = planning_story(
        &app,
        "alice",
        json!({"title": "Ad", "duration_seconds": 30, "ai_provider": "runway"}),
        json!({}),
    )
    .await;
    let reply = app.get(&format!("{API}/stories/{id}/cost_estimate/"), "alice").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["story"], id.as_str());
    assert_eq!((body["provider"].clone(), body["seconds"].clone()), (json!("runway"), json!(30)));
    let price = |list: &str, quality: &str| {
        body[list].as_array().unwrap().iter().find(|q| q["quality"] == quality).unwrap()["cost_usd"].as_f64().unwrap()
    };
    assert_eq!(price("preview", "low"), 3.6, "gen4.5 at $0.12/s");
    assert_eq!(price("final", "high"), 3.6);
    assert!(body["estimated_render_seconds"].as_f64().unwrap() > 0.0);
    // Switching the provider changes the estimate.
    app.patch(&format!("{API}/stories/{id}/"), "alice", json!({"ai_provider": "local"})).await;
    let local = app.get(&format!("{API}/stories/{id}/cost_estimate/"), "alice").await;
    assert_eq!(local.body["total_usd"], 0.0);
    assert_eq!(app.get(&format!("{API}/stories/{id}/cost_estimate/"), "bob").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_but_well_formed_ids_are_404_even_on_a_fresh_store() {
    let app = TestApp::new().await;
    let unknown = "01JCZ5T8Y9E6K3W7QX4M2N1P9Z";
    for path in
        [format!("{API}/scenes/{unknown}/"), format!("{API}/prompts/{unknown}/"), format!("{API}/stories/{unknown}/")]
    {
        let reply = app.get(&path, "alice").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}: {}", reply.body);
    }
    let reply = app.patch(&format!("{API}/scenes/{unknown}/"), "alice", json!({"title": "x"})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app.post(&format!("{API}/prompts/{unknown}/select/"), "alice", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        app.get(&format!("{API}/scenes/?story={unknown}"), "alice").await.body["results"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
