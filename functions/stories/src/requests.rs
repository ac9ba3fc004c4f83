//! What clients send to the Stories routes, read field by field with DRF's messages. Read-only
//! fields (`id`, `owner`, `status`, `is_locked`, `version`, `preview`, `final`…) are not read at
//! all, so a client can never write them.

use serde_json::{Map, Value};
use shared::Error;
use shared::domain::prompt::PromptType;
use shared::domain::state_machine::StoryStatus;
use shared::domain::story::{NewStory, StoryEdit};
use shared::domain::values::{
    AiProvider, Description, DurationSeconds, Fps, Project, Reason, Resolution, StylePreset, Title,
};
use shared::http::json::{Fields, boolean, integer, string};
use shared::ports::StoryFilter;
use shared::services::WriterChoice;

fn title(v: &Value) -> Result<Title, String> {
    Title::parse(string(v)?)
}
fn description(v: &Value) -> Result<Description, String> {
    Description::parse(string(v)?)
}
fn duration(v: &Value) -> Result<DurationSeconds, String> {
    DurationSeconds::parse(integer(v)?)
}
fn fps(v: &Value) -> Result<Fps, String> {
    Fps::parse(integer(v)?)
}
fn resolution(v: &Value) -> Result<Resolution, String> {
    Resolution::parse(string(v)?)
}
fn provider(v: &Value) -> Result<AiProvider, String> {
    AiProvider::parse(string(v)?)
}
fn style(v: &Value) -> Result<StylePreset, String> {
    StylePreset::parse(string(v)?)
}
/// A budget in dollars: a number from 0 to a million, at most four decimals' worth kept.
fn budget(v: &Value) -> Result<f64, String> {
    let usd = shared::http::json::number(v)?;
    if !(0.0..=1_000_000.0).contains(&usd) {
        return Err("Ensure this value is between 0 and 1000000.".to_owned());
    }
    Ok(shared::domain::pricing::round_usd(usd))
}
fn project(v: &Value) -> Result<Project, String> {
    Project::parse(integer(v)?)
}
fn status(v: &Value) -> Result<StoryStatus, String> {
    StoryStatus::parse(string(v)?)
}
fn reason(v: &Value) -> Result<Reason, String> {
    Reason::parse(string(v)?)
}

/// `POST stories/`.
pub fn new_story(body: &Map<String, Value>) -> Result<NewStory, Error> {
    let mut f = Fields::new(body);
    let title = f.required("title", title);
    let edit = writable_fields(&mut f);
    f.finish()?;
    let title = title.ok_or_else(|| Error::field("title", "This field is required."))?;
    Ok(NewStory {
        project: edit.project.flatten(),
        title,
        description: edit.description,
        duration_seconds: edit.duration_seconds,
        fps: edit.fps,
        resolution: edit.resolution,
        ai_provider: edit.ai_provider,
        style_preset: edit.style_preset,
        budget_usd: edit.budget_usd.flatten(),
    })
}

/// `PUT stories/{id}/` (title required, as DRF's full update) or `PATCH` (everything optional).
pub fn story_edit(body: &Map<String, Value>, partial: bool) -> Result<StoryEdit, Error> {
    let mut f = Fields::new(body);
    let title = if partial { f.optional("title", title) } else { f.required("title", title) };
    let mut edit = writable_fields(&mut f);
    f.finish()?;
    edit.title = title;
    Ok(edit)
}

fn writable_fields(f: &mut Fields<'_>) -> StoryEdit {
    StoryEdit {
        project: f.nullable("project", project),
        title: None,
        description: f.optional("description", description),
        duration_seconds: f.optional("duration_seconds", duration),
        fps: f.optional("fps", fps),
        resolution: f.optional("resolution", resolution),
        ai_provider: f.optional("ai_provider", provider),
        style_preset: f.optional("style_preset", style),
        budget_usd: f.nullable("budget_usd", budget),
    }
}

/// `POST stories/{id}/transition/`: `{"to": "...", "reason": "..."}`.
pub fn transition(body: &Map<String, Value>) -> Result<(StoryStatus, Option<Reason>), Error> {
    let mut f = Fields::new(body);
    let to = f.required("to", status);
    let reason = f.nullable("reason", reason).flatten();
    f.finish()?;
    let to = to.ok_or_else(|| Error::field("to", "This field is required."))?;
    Ok((to, reason))
}

/// The filters of `GET stories/` (`status`, `project`, `ai_provider`).
pub fn story_filter(query: &shared::http::QueryParams, errors: &mut shared::FieldErrors) -> StoryFilter {
    let mut filter = StoryFilter::default();
    if let Some(raw) = query.get("status").filter(|s| !s.is_empty()) {
        match StoryStatus::parse(raw) {
            Ok(s) => filter.status = Some(s),
            Err(m) => errors.add("status", m),
        }
    }
    if let Some(raw) = query.get("project").filter(|s| !s.is_empty()) {
        match raw.parse::<i64>().map_err(|_| "A valid integer is required.".to_owned()).and_then(Project::parse) {
            Ok(p) => filter.project = Some(p),
            Err(m) => errors.add("project", m),
        }
    }
    if let Some(raw) = query.get("ai_provider").filter(|s| !s.is_empty()) {
        match AiProvider::parse(raw) {
            Ok(p) => filter.ai_provider = Some(p),
            Err(m) => errors.add("ai_provider", m),
        }
    }
    filter
}

/// `POST stories/{id}/scenes/bulk/`: `{"scene_count": 3–24, "replace": bool}`, both optional.
pub fn bulk(body: &Map<String, Value>) -> Result<(Option<u32>, bool), Error> {
    let mut f = Fields::new(body);
    let count = f.optional("scene_count", |v| {
        let n = integer(v)?;
        u32::try_from(n).map_err(|_| "Ensure this value is between 3 and 24.".to_owned())
    });
    let replace = f.optional("replace", boolean).unwrap_or(false);
    f.finish()?;
    Ok((count, replace))
}

/// `POST stories/{id}/generate-prompts/`: `{"prompt_type": "video", "writer": "template"|"llm"}`.
pub fn generate_prompts(body: &Map<String, Value>) -> Result<(PromptType, Option<WriterChoice>), Error> {
    let mut f = Fields::new(body);
    let prompt_type = f.optional("prompt_type", |v| PromptType::parse(string(v)?)).unwrap_or(PromptType::Video);
    let writer = f.optional("writer", |v| match string(v)? {
        "template" => Ok(WriterChoice::Template),
        "llm" => Ok(WriterChoice::Llm),
        other => Err(format!("\"{}\" is not a valid choice.", other.chars().take(100).collect::<String>())),
    });
    f.finish()?;
    Ok((prompt_type, writer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn errors(result: Result<impl std::fmt::Debug, Error>) -> std::collections::BTreeMap<String, Vec<String>> {
        match result {
            Err(Error::Validation(e)) => e.0,
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn a_story_needs_a_title() {
        let e = errors(new_story(&obj(json!({}))));
        assert_eq!(e["title"], vec!["This field is required."]);
    }

    #[test]
    fn every_wrong_field_is_named_at_once() {
        let e = errors(new_story(&obj(json!({
            "title": 5, "description": [], "duration_seconds": "long", "fps": 0,
            "resolution": "641x360", "ai_provider": "sora", "style_preset": "", "project": -1
        }))));
        let named: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(
            named,
            vec![
                "ai_provider",
                "description",
                "duration_seconds",
                "fps",
                "project",
                "resolution",
                "style_preset",
                "title"
            ]
        );
    }

    #[test]
    fn read_only_fields_are_not_read() {
        let new =
            new_story(&obj(json!({"title": "T", "status": "COMPLETED", "owner": "mallory", "version": 99}))).unwrap();
        assert_eq!(new, NewStory::titled(Title::parse("T").unwrap()));
    }

    #[test]
    fn patch_may_clear_the_project_and_put_needs_the_title() {
        let edit = story_edit(&obj(json!({"project": null})), true).unwrap();
        assert_eq!(edit.project, Some(None));
        assert!(story_edit(&obj(json!({"fps": 30})), false).is_err());
    }

    #[test]
    fn a_transition_names_a_known_status() {
        assert!(errors(transition(&obj(json!({"to": "DONE"})))).contains_key("to"));
        assert!(errors(transition(&obj(json!({})))).contains_key("to"));
        assert_eq!(transition(&obj(json!({"to": "PLANNING", "reason": null}))).unwrap(), (StoryStatus::Planning, None));
    }
}
