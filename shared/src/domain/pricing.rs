//! What rendering costs: the providers' published prices (FACTS.md, 2026-11) as the seed of
//! `AIProviderConfig`, and the cost estimate of a story per quality.

use serde::Serialize;
use serde_json::Map;

use crate::domain::provider::{AiProviderConfig, PricePerSecond, Quality};
use crate::domain::values::AiProvider;

fn config(
    provider: AiProvider,
    enabled: bool,
    model: &str,
    price: [f64; 3],
    max_clip_seconds: u32,
    rate_limit_per_minute: u32,
    secret: Option<&str>,
) -> AiProviderConfig {
    AiProviderConfig {
        provider,
        enabled,
        model: model.to_owned(),
        price_per_second_usd: PricePerSecond { low: price[0], medium: price[1], high: price[2] },
        max_clip_seconds,
        rate_limit_per_minute,
        secret_name: secret.map(str::to_owned),
        default_parameters: Map::new(),
        version: 0,
    }
}

/// The seed configuration of every provider. Prices are the published ones: Runway gen4.5
/// $0.12/s (gen4_turbo, $0.05/s, renders from an image only, so it is not the text default), Luma
/// ray-2 ≈ $0.04–0.08/s, Veo's default Gemini Omni Flash ≈ $0.10/s (720p only; the Veo 3.1
/// models ≈ $0.05–0.40/s by tier), fal.ai Kling 2.5 Turbo ≈ $0.21 per 5 s. Replicate and
/// Stability AI publish no per-second price for video in our notes: they are seeded disabled at
/// $0 until an admin sets their prices.
pub fn seed_provider_configs() -> Vec<AiProviderConfig> {
    AiProvider::ALL.iter().map(|p| seed_provider_config(*p)).collect()
}

/// The seed configuration of one provider (see `seed_provider_configs`).
pub fn seed_provider_config(provider: AiProvider) -> AiProviderConfig {
    match provider {
        AiProvider::Local => config(provider, true, "ffmpeg-title-card", [0.0, 0.0, 0.0], 600, 600, None),
        AiProvider::Runway => config(provider, true, "gen4.5", [0.12, 0.12, 0.12], 10, 60, Some("RUNWAY_API_KEY")),
        AiProvider::Luma => config(provider, true, "ray-2", [0.04, 0.06, 0.08], 9, 60, Some("LUMA_API_KEY")),
        // Gemini Omni Flash, the default video model of Google's video guide for the Gemini API:
        // 720p only, so one price for every quality. $0.10 per output second is third parties'
        // figure (5,792 output tokens per second at $17.50 per million; GMI Cloud's model page:
        // "$0.10 per second of generated video"); no first-party price page was read. It renders
        // 3–10 s clips. An admin who configures a Veo 3.1 model sets its price with it.
        AiProvider::Veo => config(
            provider,
            true,
            crate::domain::provider::VEO_DEFAULT_MODEL,
            [0.10, 0.10, 0.10],
            10,
            10,
            Some("GEMINI_API_KEY"),
        ),
        AiProvider::Replicate => config(provider, false, "", [0.0, 0.0, 0.0], 10, 600, Some("REPLICATE_API_TOKEN")),
        AiProvider::Fal => config(
            provider,
            true,
            "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
            // $0.35 for 5 s and $0.07 per further second (fal's model page): $0.07 per second
            // for the 5 and 10 s it renders.
            [0.07, 0.07, 0.07],
            10,
            60,
            Some("FAL_KEY"),
        ),
        AiProvider::StabilityAi => {
            config(provider, false, "stable-video-diffusion", [0.0, 0.0, 0.0], 4, 150, Some("STABILITY_API_KEY"))
        }
    }
}

/// Rough rendering speed, seconds of wall time per second of video, for the estimate.
fn render_seconds_per_video_second(provider: AiProvider) -> f64 {
    match provider {
        AiProvider::Local => 0.2,
        AiProvider::Runway | AiProvider::Fal => 6.0,
        AiProvider::Luma | AiProvider::Replicate => 10.0,
        AiProvider::Veo => 12.0,
        AiProvider::StabilityAi => 8.0,
    }
}

/// The cost of one render at one quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityCost {
    /// `low`, `medium` or `high`.
    pub quality: Quality,
    /// Seconds × price.
    pub cost_usd: f64,
}

/// What `cost_estimate/` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostEstimate {
    /// The provider priced.
    pub provider: AiProvider,
    /// Its model.
    pub model: String,
    /// Seconds of video rendered by one pass.
    pub seconds: u32,
    /// A preview, per quality.
    pub preview: Vec<QualityCost>,
    /// A final, per quality.
    pub r#final: Vec<QualityCost>,
    /// Both, at the defaults (preview medium, final high).
    pub total_usd: f64,
    /// Rough wall time of one render pass, in seconds (scenes render in parallel, so this is
    /// the longest scene's time plus composition).
    pub estimated_render_seconds: f64,
}

/// Money is kept to a hundredth of a cent: every amount the API shows is rounded here, once.
pub fn round_usd(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn cents(v: f64) -> f64 {
    round_usd(v)
}

/// What one rendered clip costs: the seconds it lasts at the price the render started with.
pub fn clip_cost(duration_seconds: f64, price_per_second_usd: f64) -> f64 {
    round_usd(duration_seconds.max(0.0) * price_per_second_usd)
}

/// Prices a story of `seconds` seconds whose longest scene lasts `longest_scene` seconds.
pub fn estimate(config: &AiProviderConfig, seconds: u32, longest_scene: f64) -> CostEstimate {
    let per = |q: Quality| QualityCost {
        quality: q,
        cost_usd: cents(f64::from(seconds) * config.price_per_second_usd.at(q)),
    };
    let qualities = [Quality::Low, Quality::Medium, Quality::High];
    let preview: Vec<QualityCost> = qualities.iter().map(|q| per(*q)).collect();
    let r#final = preview.clone();
    let total = per(Quality::Medium).cost_usd + per(Quality::High).cost_usd;
    let speed = render_seconds_per_video_second(config.provider);
    CostEstimate {
        provider: config.provider,
        model: config.model.clone(),
        seconds,
        preview,
        r#final,
        total_usd: cents(total),
        estimated_render_seconds: cents(longest_scene.max(0.0) * speed + f64::from(seconds) * 0.05 + 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_costs_its_seconds_at_the_render_price_to_a_hundredth_of_a_cent() {
        assert_eq!(clip_cost(2.5, 0.12), 0.3);
        assert_eq!(clip_cost(1.0 / 3.0, 0.05), 0.0167);
        assert_eq!(clip_cost(-1.0, 0.05), 0.0);
        assert_eq!(round_usd(0.123_456), 0.1235);
    }

    fn seeded(provider: AiProvider) -> AiProviderConfig {
        seed_provider_configs().into_iter().find(|c| c.provider == provider).unwrap()
    }

    #[test]
    fn every_provider_is_seeded_once() {
        let configs = seed_provider_configs();
        assert_eq!(configs.len(), AiProvider::ALL.len());
        for provider in AiProvider::ALL {
            assert_eq!(configs.iter().filter(|c| c.provider == *provider).count(), 1);
        }
    }

    #[test]
    fn a_thirty_second_runway_story_costs_what_runway_publishes() {
        let estimate = estimate(&seeded(AiProvider::Runway), 30, 3.0);
        // gen4.5 at $0.12/s at every quality.
        assert_eq!(estimate.preview[0].cost_usd, 3.6);
        assert_eq!(estimate.r#final[2].cost_usd, 3.6);
        assert_eq!(estimate.total_usd, 3.6 + 3.6);
    }

    #[test]
    fn the_local_renderer_is_free_and_fast() {
        let estimate = estimate(&seeded(AiProvider::Local), 6, 0.6);
        assert_eq!(estimate.total_usd, 0.0);
        assert!(estimate.estimated_render_seconds < 5.0);
    }

    #[test]
    fn veo_starts_on_gemini_omni_flash_at_ten_cents_a_second_for_clips_up_to_ten_seconds() {
        let veo = seeded(AiProvider::Veo);
        assert_eq!(veo.model, crate::domain::provider::VEO_DEFAULT_MODEL);
        assert_eq!(veo.price_per_second_usd, PricePerSecond { low: 0.10, medium: 0.10, high: 0.10 });
        assert_eq!(veo.max_clip_seconds, 10);
        assert_eq!(estimate(&veo, 30, 10.0).total_usd, 6.0);
    }

    #[test]
    fn providers_without_a_published_price_start_disabled() {
        assert!(!seeded(AiProvider::Replicate).enabled);
        assert!(!seeded(AiProvider::StabilityAi).enabled);
    }
}
