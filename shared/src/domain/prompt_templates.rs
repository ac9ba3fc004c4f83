//! The deterministic prompt writer: the same story and scene always give the same prompt, built
//! from the scene's kind and the story's title, description and style preset.

use serde_json::{Map, Value, json};

use crate::domain::error::Error;
use crate::domain::prompt::PromptType;
use crate::domain::scene::SceneKind;
use crate::domain::story::Story;
use crate::domain::values::PromptText;

/// What the writer needs to know about one scene.
#[derive(Debug, Clone, Copy)]
pub struct SceneBrief<'a> {
    /// Its kind.
    pub kind: SceneKind,
    /// Its 0-based order.
    pub order: u32,
    /// How many scenes the story has.
    pub scene_count: u32,
    /// Its own title (may be empty).
    pub title: &'a str,
    /// Its own description (may be empty).
    pub description: &'a str,
    /// Its length in seconds.
    pub seconds: f64,
}

fn style_words(style: &str) -> String {
    match style.to_ascii_lowercase().as_str() {
        "cinematic" => {
            "cinematic, anamorphic lens, dramatic lighting, shallow depth of field, subtle film grain".into()
        }
        "anime" => "anime style, cel shading, vibrant colors, expressive characters, clean line art".into(),
        "documentary" => "documentary style, natural light, handheld camera, realistic detail".into(),
        "commercial" => "commercial style, clean studio lighting, product focus, crisp high-key look".into(),
        "noir" => "film noir, high-contrast black and white, hard shadows, moody atmosphere".into(),
        "watercolor" => "watercolor illustration, soft washes, paper texture, gentle colors".into(),
        other => format!("{other} style"),
    }
}

fn camera_for(kind: SceneKind, order: u32) -> (&'static str, &'static str) {
    match kind {
        SceneKind::Intro => ("wide establishing shot", "slow push-in"),
        SceneKind::Outro => ("wide closing shot", "slow pull-back"),
        SceneKind::Main => match order % 4 {
            0 => ("medium shot", "steady tracking"),
            1 => ("close-up", "gentle handheld drift"),
            2 => ("over-the-shoulder shot", "slow pan"),
            _ => ("wide shot", "smooth dolly"),
        },
    }
}

/// The title the planner gives a scene: `Intro`, `Scene 3 of 10`, `Outro`.
pub fn default_scene_title(kind: SceneKind, order: u32, mains: u32) -> String {
    match kind {
        SceneKind::Intro => "Intro".to_owned(),
        SceneKind::Outro => "Outro".to_owned(),
        SceneKind::Main => format!("Scene {order} of {mains}"),
    }
}

/// A stable seed for a story's scene, so re-rendering the same prompt gives the same clip.
fn seed(story_id: &str, order: u32) -> u32 {
    // FNV-1a: tiny, stable across releases (unlike the standard library's hasher).
    let mut hash: u32 = 0x811c_9dc5;
    for byte in story_id.bytes().chain(order.to_be_bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn clip(text: &str, max_chars: usize) -> String {
    let trimmed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if trimmed.chars().count() <= max_chars {
        trimmed
    } else {
        let cut: String = trimmed.chars().take(max_chars.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The prompt text and parameters of one scene.
pub fn write_prompt(
    story: &Story,
    scene: &SceneBrief<'_>,
    prompt_type: PromptType,
) -> Result<(PromptText, Map<String, Value>), Error> {
    let title = clip(story.title.as_str(), 200);
    let story_desc = clip(story.description.as_str(), 1200);
    let scene_desc = clip(scene.description, 1200);
    let style = style_words(story.style_preset.as_str());
    let (shot, motion) = camera_for(scene.kind, scene.order);
    let what = if !scene_desc.is_empty() {
        scene_desc.clone()
    } else if !story_desc.is_empty() {
        story_desc.clone()
    } else {
        format!("the story \"{title}\"")
    };
    let mains = scene.scene_count.saturating_sub(2).max(1);
    // A title the planner gave adds nothing; one the user wrote does.
    let planned_title = default_scene_title(scene.kind, scene.order, mains);
    let label = if scene.title.trim().is_empty() || scene.title == planned_title {
        String::new()
    } else {
        format!(" \"{}\"", clip(scene.title, 200))
    };
    let text = match prompt_type {
        PromptType::Video | PromptType::Image => {
            let part = match scene.kind {
                SceneKind::Intro => format!("Opening scene{label} of \"{title}\": {shot} that introduces {what}."),
                SceneKind::Outro => format!("Closing scene{label} of \"{title}\": {shot} that resolves {what}."),
                SceneKind::Main => {
                    format!("Scene {} of {mains}{label} of \"{title}\": {shot} showing {what}.", scene.order)
                }
            };
            let still = if prompt_type == PromptType::Image { " A single still frame." } else { "" };
            format!("{part} Camera: {motion}. {style}. {:.1} seconds.{still}", scene.seconds)
        }
        PromptType::Negative => {
            "blurry, low resolution, distorted faces, extra limbs, watermark, text artifacts, flicker".to_owned()
        }
        PromptType::Narration => match scene.kind {
            SceneKind::Intro => format!("{title}."),
            SceneKind::Outro => "The end.".to_owned(),
            SceneKind::Main => clip(&what, 300),
        },
    };
    let mut parameters = Map::new();
    parameters.insert("seed".into(), json!(seed(story.id.as_str(), scene.order)));
    parameters.insert("camera".into(), json!(shot));
    parameters.insert("motion".into(), json!(motion));
    parameters.insert("guidance".into(), json!(7.5));
    // Every part above is clipped and the fixed words are never blank, so this cannot fail.
    let text = PromptText::parse(&clip(&text, PromptText::MAX)).map_err(Error::internal)?;
    Ok((text, parameters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{StoryId, UserId};
    use crate::domain::story::NewStory;
    use crate::domain::values::{Description, StylePreset, Title};

    fn story(style: &str, description: &str) -> Story {
        let mut new = NewStory::titled(Title::parse("Ocean Dreams").unwrap());
        new.style_preset = Some(StylePreset::parse(style).unwrap());
        new.description = Some(Description::parse(description).unwrap());
        Story::create(
            StoryId::parse("01JCZ5T8Y9E6K3W7QX4M2N1P0R").unwrap(),
            UserId::parse("u").unwrap(),
            new,
            chrono::Utc::now(),
        )
    }

    fn brief(kind: SceneKind, order: u32) -> SceneBrief<'static> {
        SceneBrief { kind, order, scene_count: 12, title: "", description: "", seconds: 5.0 }
    }

    #[test]
    fn the_same_input_gives_the_same_prompt() {
        let s = story("cinematic", "A whale sings to the moon");
        assert_eq!(
            write_prompt(&s, &brief(SceneKind::Main, 3), PromptType::Video).unwrap(),
            write_prompt(&s, &brief(SceneKind::Main, 3), PromptType::Video).unwrap()
        );
    }

    #[test]
    fn the_prompt_uses_kind_title_description_and_style() {
        let s = story("anime", "A whale sings to the moon");
        let (intro, _) = write_prompt(&s, &brief(SceneKind::Intro, 0), PromptType::Video).unwrap();
        let (main, params) = write_prompt(&s, &brief(SceneKind::Main, 1), PromptType::Video).unwrap();
        let (outro, _) = write_prompt(&s, &brief(SceneKind::Outro, 11), PromptType::Video).unwrap();
        assert!(intro.as_str().starts_with("Opening scene of \"Ocean Dreams\""), "{intro}");
        assert!(main.as_str().contains("A whale sings to the moon"));
        assert!(main.as_str().contains("cel shading"));
        assert!(outro.as_str().starts_with("Closing scene"));
        assert!(params["seed"].is_u64());
    }

    #[test]
    fn huge_descriptions_still_fit_a_prompt() {
        let s = story("cinematic", &"word ".repeat(999));
        let long = "x".repeat(4000);
        let scene = SceneBrief { description: &long, title: &long[..200], ..brief(SceneKind::Main, 2) };
        let (text, _) = write_prompt(&s, &scene, PromptType::Video).unwrap();
        assert!(text.as_str().chars().count() <= PromptText::MAX);
    }
}
