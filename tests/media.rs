//! Video work with the real ffmpeg, checked with ffprobe: exact clip lengths, sizes, rates and
//! codecs; composition in order with scaling, watermark, subtitles and every output format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use shared::adapters::ffmpeg::{Composition, Ffmpeg, MediaError, OutputFormat, Subtitle, TitleCard};

fn tools() -> Ffmpeg {
    Ffmpeg::locate().expect("ffmpeg and ffprobe are installed by ./scripts/install-test-deps")
}

fn card(frames: u32, heading: &str, body: &str) -> TitleCard {
    TitleCard {
        width: 640,
        height: 360,
        fps: 24,
        frames,
        title: "The fox in the snow".into(),
        heading: heading.into(),
        body: body.into(),
    }
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

/// The longest texts the API accepts: a 4000-character prompt (long words, wide characters, emoji)
/// and a 200-character title.
fn longest_card(width: u32, height: u32) -> TitleCard {
    let mut body = String::new();
    let pieces = [
        "A fox explores a snowy forest.",
        "Supercalifragilisticexpialidocious-camera-move",
        "여우가 눈 덮인 숲을 탐험한다",
        "🦊🌲❄️",
        "WWWWWWWWWW MMMMMMMMMM",
    ];
    let mut i = 0;
    while body.chars().count() < 4000 {
        body.push_str(pieces[i % pieces.len()]);
        body.push(' ');
        i += 1;
    }
    let body: String = body.chars().take(4000).collect();
    TitleCard {
        width,
        height,
        fps: 24,
        frames: 24,
        title: "W".repeat(40) + &" The fox in the snow".repeat(8),
        heading: format!("Scene 12 · outro · 4.0 s · {}", "Long scene title ".repeat(12)),
        body,
    }
}

/// Frame `n` of `video` as RGB pixels.
fn frame_pixels(video: &std::path::Path, n: u32, width: u32, height: u32) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(video)
        .args(["-vf", &format!("select=eq(n\\,{n})"), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), (width * height * 3) as usize);
    out.stdout
}

/// The outer 5 % of every edge holds only the card's background (text wraps inside the safe
/// area that players and thumbnails may crop), while the inside does hold text.
#[tokio::test]
async fn local_frames_keep_the_longest_text_inside_the_safe_area() {
    use shared::adapters::ffmpeg::CARD_BACKGROUND;
    let ffmpeg = tools();
    let dir = tempfile::tempdir().unwrap();
    for (width, height) in [(1920, 1080), (1080, 1920), (640, 360), (854, 480)] {
        let out = dir.path().join(format!("card-{width}x{height}.mp4"));
        ffmpeg.title_card(&longest_card(width, height), &out).await.unwrap();
        for n in [0, 23] {
            let pixels = frame_pixels(&out, n, width, height);
            let (mx, my) = ((width as f64 * 0.05).ceil() as u32, (height as f64 * 0.05).ceil() as u32);
            let mut inked_inside = 0;
            for y in 0..height {
                for x in 0..width {
                    let i = ((y * width + x) * 3) as usize;
                    // H.264 in yuv420p moves flat colours by a few levels.
                    let off = (0..3).any(|c| (i32::from(pixels[i + c]) - i32::from(CARD_BACKGROUND[c])).abs() > 24);
                    let in_margin = x < mx || x >= width - mx || y < my || y >= height - my;
                    assert!(!(in_margin && off), "{width}x{height} frame {n}: ink at ({x}, {y}) inside the 5 % margin");
                    inked_inside += usize::from(off);
                }
            }
            // Text covers a good part of the card: the test sees text when there is text.
            assert!(inked_inside > (width * height / 50) as usize, "{width}x{height}: {inked_inside} inked pixels");
        }
    }
}
