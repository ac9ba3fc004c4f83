//! Video work with the real ffmpeg, checked with ffprobe: exact clip lengths, sizes, rates and
//! codecs; composition in order with scaling, watermark, subtitles and every output format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use shared::adapters::ffmpeg::{Composition, Ffmpeg, MediaError, OutputFormat, Subtitle, TitleCard};

fn tools() -> Ffmpeg {
    Ffmpeg::locate().expect("ffmpeg and ffprobe are installed by ./scripts/install-test-deps")
}

fn card(frames: u32, heading: &str, body: &str) -> TitleCard {
    TitleCard { width: 640, height: 360, fps: 24, frames, heading: heading.into(), body: body.into() }
}

async fn clips(ffmpeg: &Ffmpeg, dir: &std::path::Path, frames: &[u32]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (i, n) in frames.iter().enumerate() {
        let path = dir.join(format!("clip-{i}.mp4"));
        ffmpeg
            .title_card(
                &card(*n, &format!("MAIN · {}/{}", i + 1, frames.len()), "A fox explores a snowy forest"),
                &path,
            )
            .await
            .unwrap();
        out.push(path);
    }
    out
}

fn spec(format: OutputFormat, scale: f64) -> Composition {
    Composition { width: 640, height: 360, fps: 24, scale, format, watermark: None, subtitles: vec![] }
}

#[tokio::test]
async fn a_title_card_has_exactly_the_frames_size_and_rate_asked_for() {
    let ffmpeg = tools();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("intro.mp4");
    ffmpeg
        .title_card(&card(14, "INTRO · 1/12", "Opening scene of \"Fox\": wide establishing shot"), &out)
        .await
        .unwrap();
    let probe = ffmpeg.probe(&out).await.unwrap();
    assert_eq!((probe.width, probe.height, probe.codec.as_str()), (640, 360, "h264"));
    assert_eq!(probe.fps, 24.0);
    assert_eq!(probe.frames, 14);
    assert!((probe.duration_seconds - 14.0 / 24.0).abs() <= 1.0 / 24.0, "{probe:?}");
}

#[tokio::test]
async fn text_that_looks_like_filter_syntax_is_drawn_not_parsed() {
    let ffmpeg = tools();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ugly.mp4");
    let body = "it's 50% done: [x]=y; a,b \\ %{pts} drawtext=text='pwned' \u{1F98A} 狐狸\nnew line";
    ffmpeg.title_card(&card(3, "MAIN: 'quoted'", body), &out).await.unwrap();
    assert_eq!(ffmpeg.probe(&out).await.unwrap().frames, 3);
}

#[tokio::test]
async fn composing_joins_clips_in_order_to_the_sum_of_their_lengths() {
    let ffmpeg = tools();
    let dir = tempfile::tempdir().unwrap();
    let parts = clips(&ffmpeg, dir.path(), &[14, 12, 11, 11, 12, 12, 14]).await;
    let out = dir.path().join("final.mp4");
    ffmpeg.compose(&parts, &spec(OutputFormat::Mp4, 1.0), &out).await.unwrap();
    let probe = ffmpeg.probe(&out).await.unwrap();
    assert_eq!((probe.width, probe.height, probe.codec.as_str()), (640, 360, "h264"));
    assert_eq!(probe.fps, 24.0);
    assert_eq!(probe.frames, 86);
    assert!((probe.duration_seconds - 86.0 / 24.0).abs() <= 1.0 / 24.0, "{probe:?}");
}

#[tokio::test]
async fn previews_are_scaled_and_watermarked_and_finals_can_carry_subtitles() {
    let ffmpeg = tools();
    let dir = tempfile::tempdir().unwrap();
    let parts = clips(&ffmpeg, dir.path(), &[24, 24]).await;
    let preview = dir.path().join("preview.mp4");
    let low = Composition { watermark: Some("PREVIEW".into()), ..spec(OutputFormat::Mp4, 0.5) };
    ffmpeg.compose(&parts, &low, &preview).await.unwrap();
    let probe = ffmpeg.probe(&preview).await.unwrap();
    assert_eq!((probe.width, probe.height, probe.frames), (320, 180, 48));
    let subtitled = dir.path().join("subtitled.mp4");
    let with_text = Composition {
        subtitles: vec![
            Subtitle { start: 0.0, end: 1.0, text: "Once, in the snow: a fox.".into() },
            Subtitle { start: 1.0, end: 2.0, text: "It's 100% curious; [really]".into() },
        ],
        ..spec(OutputFormat::Mp4, 1.0)
    };
    ffmpeg.compose(&parts, &with_text, &subtitled).await.unwrap();
    let probe = ffmpeg.probe(&subtitled).await.unwrap();
    assert_eq!((probe.width, probe.height, probe.frames), (640, 360, 48));
}

#[tokio::test]
async fn webm_and_gif_are_written_too() {
    let ffmpeg = tools();
    let dir = tempfile::tempdir().unwrap();
    let parts = clips(&ffmpeg, dir.path(), &[12, 12]).await;
    let webm = dir.path().join("final.webm");
    ffmpeg.compose(&parts, &spec(OutputFormat::Webm, 1.0), &webm).await.unwrap();
    let probe = ffmpeg.probe(&webm).await.unwrap();
    assert_eq!((probe.codec.as_str(), probe.width, probe.frames), ("vp8", 640, 24));
    assert!(probe.format.contains("webm"));
    let gif = dir.path().join("final.gif");
    ffmpeg.compose(&parts, &spec(OutputFormat::Gif, 0.5), &gif).await.unwrap();
    let probe = ffmpeg.probe(&gif).await.unwrap();
    assert_eq!((probe.codec.as_str(), probe.width, probe.height), ("gif", 320, 180));
    assert_eq!(std::fs::read(&gif).unwrap()[..3], *b"GIF");
}

#[tokio::test]
async fn nothing_to_compose_and_empty_clips_are_refused() {
    let ffmpeg = tools();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mp4");
    assert!(matches!(ffmpeg.compose(&[], &spec(OutputFormat::Mp4, 1.0), &out).await, Err(MediaError::Invalid(_))));
    assert!(matches!(ffmpeg.title_card(&card(0, "x", "y"), &out).await, Err(MediaError::Invalid(_))));
    let broken = dir.path().join("broken.mp4");
    std::fs::write(&broken, b"not a video").unwrap();
    assert!(matches!(
        ffmpeg.compose(&[broken], &spec(OutputFormat::Mp4, 1.0), &out).await,
        Err(MediaError::Failed { .. })
    ));
}

#[test]
fn a_missing_ffmpeg_is_reported_with_what_to_install() {
    let err = Ffmpeg::at(PathBuf::from("/nonexistent/ffmpeg"), PathBuf::from("ffprobe")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ffmpeg not found") && text.contains("apt-get install ffmpeg"), "{text}");
}
